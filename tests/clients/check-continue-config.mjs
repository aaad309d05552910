// Continue's own reading of a config.yaml (stdin): @continuedev/config-yaml's parseConfigYaml
// (YAML + its zod schema, which drops keys it does not know) and validateConfigYaml (its
// checks beyond the schema). Prints {"parsed": ..., "errors": [...]}; a parse failure is
// printed as a fatal error, so the caller sees the package's own message.
import { readFileSync } from "node:fs";
import { parseConfigYaml, validateConfigYaml } from "@continuedev/config-yaml";

const text = readFileSync(0, "utf8");
let parsed = null;
let errors = [];
try {
  parsed = parseConfigYaml(text);
  errors = validateConfigYaml(parsed);
} catch (e) {
  errors = [{ fatal: true, message: String(e && e.message ? e.message : e) }];
}
process.stdout.write(JSON.stringify({ parsed, errors }));
