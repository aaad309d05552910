"""Redaction benchmark: recall on planted secrets, false positives on real code, throughput.

- Recall: `bench/secret_corpus.py` writes 44 kinds of secret (cloud keys, vendor tokens, JWTs,
  private keys, passwords, basic auth, bearer tokens, database URLs, e-mail addresses, generic
  keys...) into every context each appears in (assignments in Python/JS/Go, YAML, TOML, INI,
  properties, JSON, XML, .env, Dockerfile, compose, Kubernetes Secrets, CLI flags, curl, URL
  userinfo, HTTP-client calls, connection strings, docstrings, comments, notebooks, Markdown,
  SQL), `--samples` files per pair, each with a fresh random secret (fixed seed). A secret is
  caught when none of its strings survives redaction (a notebook is redacted as the harvest
  does: its code cells). A file that parsed before redaction must parse after it.
- False positives: every redaction in the standard library's own sources (the Python
  installation's `Lib/`, outside site-packages), which hold no secret: per 1,000 files, by
  kind, with the most frequent values. E-mail addresses there are real people's, counted apart.
- Throughput: both redactors over the same standard library, MB per CPU-second, and the
  harvest's per-file stages (read, filter, redact, MinHash) with each.

The baseline is the redactor as it was before this benchmark (`BASELINE_REF`), loaded from git
into its own package and run in the same process on the same inputs.

Writes bench/results/redaction.json and prints a table. Run: `.venv/bin/python
bench/redaction.py` (`--limit N` for N standard-library files, `--samples N` per pair).
"""

from __future__ import annotations

import argparse
import ast
import configparser
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harvest import corpus  # noqa: E402
from bench.secret_corpus import KINDS, Planted, contexts_of, planted  # noqa: E402
from tailor.redaction.redact import Redaction, redact  # noqa: E402
from tailor.stages.harvest.dedup import exact_key  # noqa: E402
from tailor.stages.harvest.filters import quality_issue  # noqa: E402
from tailor.stages.harvest.minhash import MinHasher  # noqa: E402
from tailor.stages.harvest.notebooks import code_cells  # noqa: E402
from tailor.stages.harvest.spec import DedupConfig, HarvestSpec  # noqa: E402

# main before the redaction work of issue 16: the redactor this benchmark measures against.
BASELINE_REF = "74dc3ba"
NOTEBOOK = "Jupyter Notebook"
PII = ("email", "ip_address")
Redactor = Callable[..., Redaction]


def baseline_redactor(ref: str) -> Redactor | None:
    """`redact` as it was at git `ref`, imported as its own package; None without git/ref."""
    pkg = "tailor_redact_baseline"
    where = Path(tempfile.mkdtemp(prefix="tailor-redact-baseline-"))
    (where / pkg).mkdir()
    (where / pkg / "__init__.py").write_text("")
    for module in ("redact", "secret_patterns", "secret_values", "suspects"):
        try:
            source = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{ref}:tailor/stages/harvest/{module}.py"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            if module == "secret_values":
                continue  # the redactor had no such module before this benchmark
            return None
        (where / pkg / f"{module}.py").write_text(
            source.replace("tailor.stages.harvest.", pkg + ".")
        )
    sys.path.insert(0, str(where))
    fn: Redactor = import_module(f"{pkg}.redact").redact
    return fn


# --- recall ----------------------------------------------------------------------------------


def harvested_text(p: Planted) -> str:
    """The text the harvest redacts for this file: a notebook's code cells, else the file."""
    return code_cells(p.text) if p.language == NOTEBOOK else p.text


def recall(fn: Redactor, files: list[Planted]) -> dict[str, Any]:
    """Caught / planted overall, by kind and by context; the misses; parse breaks."""
    caught: dict[str, Counter[str]] = {"kind": Counter(), "context": Counter()}
    total: dict[str, Counter[str]] = {"kind": Counter(), "context": Counter()}
    misses: list[dict[str, str]] = []
    outputs: list[tuple[Planted, str, str]] = []
    for p in files:
        before = harvested_text(p)
        after = fn(before, path=p.path, language=p.language).text
        outputs.append((p, before, after))
        hit = not any(v in after for v in p.vanish)
        for axis, key in (("kind", p.kind), ("context", p.context)):
            total[axis][key] += 1
            caught[axis][key] += hit
        if not hit:
            line = next(ln for ln in after.splitlines() if any(v in ln for v in p.vanish))
            misses.append({"kind": p.kind, "context": p.context, "line": line.strip()[:160]})
    n, k = len(files), sum(caught["kind"].values())
    return {
        "planted": n,
        "caught": k,
        "recall": round(k / n, 4) if n else 1.0,
        "by_kind": _rates(caught["kind"], total["kind"]),
        "by_context": _rates(caught["context"], total["context"]),
        "misses": misses,
        "parse": parse_breaks(outputs),
    }


def _rates(caught: Counter[str], total: Counter[str]) -> dict[str, dict[str, Any]]:
    return {
        key: {"planted": total[key], "caught": caught[key], "recall": round(caught[key] / n, 4)}
        for key, n in sorted(total.items())
    }


# --- does it still parse ---------------------------------------------------------------------


def _python(text: str) -> None:
    ast.parse(text)


def _notebook_code(text: str) -> None:
    # IPython turns `%magic` and `!shell` lines into calls: drop them, parse the rest.
    ast.parse("\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith(("%", "!"))))


def _ini(text: str) -> None:
    configparser.ConfigParser(interpolation=None, strict=False).read_string(text)


def _dotenv(text: str) -> None:
    from dotenv import dotenv_values

    if any(v is None for v in dotenv_values(stream=io.StringIO(text)).values()):
        raise ValueError("a line dotenv cannot read")


def _yaml(text: str) -> None:
    import yaml

    list(yaml.safe_load_all(text))


PARSERS: dict[str, Callable[[str], None]] = {
    "python": _python,
    "notebook": _notebook_code,
    "json": json.loads,
    "yaml": _yaml,
    "toml": tomllib.loads,
    "ini": _ini,
    "xml": ET.fromstring,
    "dotenv": _dotenv,
}


def _parses(syntax: str, text: str) -> bool:
    try:
        PARSERS[syntax](text)
    except Exception:
        return False
    return True


def _shell_parses(text: str) -> bool:
    done = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, check=False)
    return done.returncode == 0


_NODE_CHECK = """
const vm = require('vm');
const srcs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(srcs.map(s => {
  try { new vm.SourceTextModule(s); return true; } catch (e) { return false; }
})));
"""


def _js_parse(texts: list[str]) -> list[bool] | None:
    """Whether node parses each text as an ES module; None without node."""
    try:
        done = subprocess.run(
            ["node", "--experimental-vm-modules", "--no-warnings", "-e", _NODE_CHECK],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    result: list[bool] = json.loads(done.stdout)
    return result


def parse_breaks(outputs: list[tuple[Planted, str, str]]) -> dict[str, Any]:
    """Files that parsed before redaction and not after, by context; how many were checked."""
    checked: Counter[str] = Counter()
    broken: list[dict[str, str]] = []
    js: list[tuple[Planted, str, str]] = []
    for p, before, after in outputs:
        if p.syntax == "javascript":
            js.append((p, before, after))
            continue
        if p.syntax == "shell":
            ok_before, ok_after = _shell_parses(before), _shell_parses(after)
        elif p.syntax in PARSERS:
            ok_before, ok_after = _parses(p.syntax, before), _parses(p.syntax, after)
        else:
            continue
        if ok_before:
            checked[p.context] += 1
            if not ok_after:
                broken.append({"kind": p.kind, "context": p.context, "text": after[:300]})
    results = _js_parse([t for _, b, a in js for t in (b, a)])
    if results is not None:
        for i, (p, _, after) in enumerate(js):
            if results[2 * i]:
                checked[p.context] += 1
                if not results[2 * i + 1]:
                    broken.append({"kind": p.kind, "context": p.context, "text": after[:300]})
    return {"checked": sum(checked.values()), "broken": len(broken), "examples": broken[:20]}


# --- false positives on the standard library -------------------------------------------------


def replaced(before: str, after: str) -> Iterable[str]:
    """The original text of each changed line's changed middle (a key block: its first line)."""
    a, b = before.split("\n"), after.split("\n")
    if len(a) != len(b):
        yield from (x for x in a if "PRIVATE KEY" in x)
        return
    for x, y in zip(a, b, strict=True):
        if x != y:
            start = _common(x, y)
            end = _common(x[start:][::-1], y[start:][::-1])
            yield x[start : len(x) - end]


def _common(a: str, b: str) -> int:
    """Length of the common prefix of `a` and `b`."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def false_positives(fn: Redactor, texts: list[tuple[str, str]]) -> dict[str, Any]:
    """Redactions in code that holds no secret: per 1,000 files, by kind, top values."""
    by_kind: Counter[str] = Counter()
    values: dict[str, Counter[str]] = defaultdict(Counter)
    files_hit = 0
    for path, text in texts:
        red = fn(text, path=path, language="Python")
        if not red.counts:
            continue
        files_hit += 1
        by_kind.update(red.counts)
        kinds = [k for k in red.counts if not k.startswith(PII)]
        bucket = "email" if "email" in red.counts and not kinds else ",".join(sorted(red.counts))
        for value in replaced(text, red.text):
            values[bucket][value.strip()[:80]] += 1
    n = len(texts)
    secret_kinds = {k: c for k, c in by_kind.items() if k not in PII}
    per_k = 1000 / n if n else 0.0
    return {
        "files": n,
        "files_with_redactions": files_hit,
        "redactions": sum(by_kind.values()),
        "per_1000_files": round(sum(by_kind.values()) * per_k, 1),
        "secret_kinds_per_1000_files": round(sum(secret_kinds.values()) * per_k, 1),
        "pii_per_1000_files": {k: round(by_kind[k] * per_k, 1) for k in PII},
        "by_kind_per_1000_files": {
            k: round(c * per_k, 1) for k, c in sorted(by_kind.items(), key=lambda kv: -kv[1])
        },
        "top_values": {
            bucket: counter.most_common(8)
            for bucket, counter in sorted(values.items(), key=lambda kv: -sum(kv[1].values()))[:12]
        },
    }


# --- throughput ------------------------------------------------------------------------------


def interleaved(
    redactors: dict[str, Redactor], work: Callable[[Redactor], None], rounds: int
) -> dict[str, float]:
    """Best CPU-seconds of `work` per redactor, rounds interleaved.

    Other work on the machine only ever slows a round, so the best is the steadiest figure, and
    interleaving lets a busy spell slow both redactors rather than one.
    """
    best = dict.fromkeys(redactors, float("inf"))
    for fn in redactors.values():
        fn("warm = 'up'", path="warm.py", language="Python")
    for _ in range(rounds):
        for name, fn in redactors.items():
            c0 = time.process_time()
            work(fn)
            best[name] = min(best[name], time.process_time() - c0)
    return best


def throughput(
    redactors: dict[str, Redactor], texts: list[tuple[str, str]], size: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """MB per CPU-second of each redactor over `texts`, and of the harvest's per-file stages
    (read, filter, redact, MinHash) with it as the redactor."""

    def redact_all(fn: Redactor) -> None:
        for path, text in texts:
            fn(text, path=path, language="Python")

    alone = interleaved(redactors, redact_all, rounds)
    stages = interleaved(
        redactors, lambda fn: per_file_stages(fn, [Path(p) for p, _ in texts]), rounds
    )
    return {
        name: {
            "redact": _mb_per_cpu_s(size, alone[name]),
            "per_file_stages": _mb_per_cpu_s(size, stages[name]),
        }
        for name in redactors
    }


def _mb_per_cpu_s(size: int, seconds: float) -> dict[str, float]:
    return {"cpu_seconds": round(seconds, 3), "mb_per_cpu_s": round(size / 2**20 / seconds, 1)}


def per_file_stages(fn: Redactor, files: list[Path]) -> None:
    """The harvest's per-file stages (read, filter, redact, MinHash) with `fn` as the redactor."""
    spec, cfg = HarvestSpec(), DedupConfig()
    hasher = MinHasher(cfg.num_perm, cfg.ngram, cfg.seed)
    batch: list[bytes] = []
    for path in files:
        data = path.read_bytes()
        if quality_issue(data, str(path), spec.filters) is not None:
            continue
        text = fn(data.decode("utf-8", "replace"), path=str(path), language="Python").text
        batch.append(text.encode("utf-8", "surrogatepass"))
        if len(batch) == 64:
            [exact_key(d) for d in batch]
            hasher.signatures(batch)
            batch = []
    if batch:
        hasher.signatures(batch)


# --- report ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--samples", type=int, default=5, help="files per (kind, context)")
    parser.add_argument("--limit", type=int, default=None, help="only N standard-library files")
    parser.add_argument("--rounds", type=int, default=5, help="throughput runs (best kept)")
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    args = parser.parse_args()

    files = list(planted(seed=args.seed, samples=args.samples))
    stdlib = corpus(args.limit)
    texts = [(str(p), p.read_bytes().decode("utf-8", "replace")) for p in stdlib]
    size = sum(len(t.encode("utf-8", "surrogatepass")) for _, t in texts)
    redactors: dict[str, Redactor] = {"current": redact}
    baseline = baseline_redactor(args.baseline_ref)
    if baseline is not None:
        redactors = {"baseline": baseline, **redactors}

    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "baseline_ref": args.baseline_ref if baseline is not None else None,
        "planted": {
            "seed": args.seed,
            "samples_per_pair": args.samples,
            "kinds": len(KINDS),
            "contexts": len({c for k in KINDS for c in contexts_of(k)}),
            "pairs": sum(len(contexts_of(k)) for k in KINDS),
            "min_contexts_per_kind": min(len(contexts_of(k)) for k in KINDS),
            "files": len(files),
        },
        "stdlib": {"files": len(texts), "mb": round(size / 2**20, 1)},
    }
    speed = throughput(redactors, texts, size, args.rounds)
    for name, fn in redactors.items():
        report[name] = {
            "recall": recall(fn, files),
            "false_positives": false_positives(fn, texts),
            "throughput": speed[name]["redact"],
            "per_file_stages": speed[name]["per_file_stages"],
        }
    if baseline is not None:
        b, c = report["baseline"], report["current"]
        report["ratios"] = {
            "redact_mb_per_cpu_s_current_vs_baseline": round(
                c["throughput"]["mb_per_cpu_s"] / b["throughput"]["mb_per_cpu_s"], 2
            ),
            "per_file_stages_current_vs_baseline": round(
                c["per_file_stages"]["mb_per_cpu_s"] / b["per_file_stages"]["mb_per_cpu_s"], 2
            ),
        }
    out = ROOT / "bench" / "results" / "redaction.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print_table(report, list(redactors))
    print(f"\nwrote {out.relative_to(ROOT)}")


def print_table(r: dict[str, Any], names: list[str]) -> None:
    p = r["planted"]
    print(
        f"planted: {p['kinds']} kinds x {p['contexts']} contexts ({p['pairs']} pairs, at least "
        f"{p['min_contexts_per_kind']} contexts per kind), {p['files']} files; "
        f"stdlib: {r['stdlib']['files']} files, {r['stdlib']['mb']} MB"
    )
    head = "".join(f"{n:>10}" for n in names)
    for axis in ("by_kind", "by_context"):
        print(f"\nrecall {axis[3:]:<28}{head}")
        for key in r[names[-1]]["recall"][axis]:
            cells = "".join(f"{r[n]['recall'][axis][key]['recall']:>10.1%}" for n in names)
            print(f"  {key:<34}{cells}")

    def parse(x: dict[str, Any]) -> str:
        return f"{x['recall']['parse']['broken']}/{x['recall']['parse']['checked']}"

    def fp(key: str, sub: str = "") -> Callable[[dict[str, Any]], Any]:
        return lambda x: x["false_positives"][key][sub] if sub else x["false_positives"][key]

    rows: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("recall overall", lambda x: f"{x['recall']['recall']:.2%}"),
        ("missed", lambda x: x["recall"]["planted"] - x["recall"]["caught"]),
        ("parse breaks (broken/checked)", parse),
        ("stdlib redactions / 1k files", fp("per_1000_files")),
        ("  secret kinds / 1k files", fp("secret_kinds_per_1000_files")),
        ("  e-mail / 1k files", fp("pii_per_1000_files", "email")),
        ("  IP address / 1k files", fp("pii_per_1000_files", "ip_address")),
        ("redact MB per CPU-s", lambda x: x["throughput"]["mb_per_cpu_s"]),
        ("per-file stages MB per CPU-s", lambda x: x["per_file_stages"]["mb_per_cpu_s"]),
    ]
    print(f"\n{'':36}{head}")
    for label, get in rows:
        print(f"{label:<36}" + "".join(f"{get(r[n])!s:>10}" for n in names))
    for n in names:
        print(f"\n{n}: top stdlib redactions by kind")
        for bucket, top in list(r[n]["false_positives"]["top_values"].items())[:6]:
            print(f"  {bucket}: {top[:4]}")
    misses = r[names[-1]]["recall"]["misses"]
    if misses:
        print(f"\n{names[-1]}: first misses")
        for m in misses[:15]:
            print(f"  {m['kind']:<24} {m['context']:<18} {m['line'][:90]}")


if __name__ == "__main__":
    main()
