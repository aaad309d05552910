"""Planted secrets for the redaction benchmark: realistic kinds written in realistic contexts.

A *kind* makes one random secret in its real format (an AWS key id, a Stripe key, a PEM block,
a password a person chose, a database URL...) and names the variable it usually lives in. A
*context* writes that secret into a small file the way code, configuration and documentation
hold it (a Python assignment, a YAML value, an `.env` line, a `curl -u` flag, a URL's userinfo,
an `auth=(...)` tuple, a docstring, a notebook cell...), escaped as that syntax demands, and
says which strings must be gone after redaction and how to check the file still parses.

Everything is drawn from one `random.Random(seed)`: the same seed gives the same corpus.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
# Symbols people put in passwords; no quote, backslash, space, colon, slash or semicolon, which
# every syntax escapes differently (a password holding them is written escaped, not leaked).
SYMBOLS = "!@#$%^&*()-_=+.?~"
# Template syntax starts with these: a secret starting with one must still count as a secret.
TEMPLATE_STARTS = "$(*%"


def _split(words: str) -> tuple[str, ...]:
    return tuple(words.split())


WORDS = _split(
    "amber cactus harbor violet ember falcon granite meadow orbit pepper quartz river saddle "
    "timber velvet walnut zephyr copper lantern maple nimbus orchid prism canyon willow"
)
FIRST = _split("jane john maria li wei olga pedro amara noah sofia ravi kenji fatima lucas ines")
LAST = _split("doe smith garcia chen novak okafor silva tanaka kowalski müller patel rossi berg")
COMPANY = _split("acme globex initech umbrella hooli vandelay stark wayne tyrell cyberdyne")
# Real top-level domains of every sort: generic, new generic, country, two-level, internal.
TLDS = _split(
    "com net org io co ai dev app cloud tech systems solutions consulting agency studio "
    "finance health software group global xyz info biz eu us de fr nl se ch pl jp ca "
    "co.uk com.au co.jp com.br internal corp lan"
)


def draw(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


@dataclass(frozen=True)
class Secret:
    """One secret as written into a file, what must not survive, and who it belongs to."""

    value: str
    # Strings that must be absent after redaction (default: the value itself).
    vanish: tuple[str, ...] = ()
    user: str = "deploy"

    def must_vanish(self) -> tuple[str, ...]:
        return self.vanish or (self.value,)


Maker = Callable[[random.Random], Secret]


@dataclass(frozen=True)
class Kind:
    """A kind of secret: how to make one, the names it goes by, how HTTP clients send it."""

    name: str
    make: Maker
    labels: tuple[tuple[str, ...], ...]
    # How a client sends it: "bearer", "basic" (a password with a user), "header:<Name>[:scheme]",
    # "url" (the secret is itself a URL to call), "aws:id" / "aws:secret" (a SigV4 key pair),
    # "none" (keys, addresses: no HTTP form).
    http: str = "bearer"
    # Contexts the kind never appears in (a PEM block is no command-line flag).
    not_in: frozenset[str] = frozenset()


# --- value makers --------------------------------------------------------------------------


def _user(rng: random.Random) -> str:
    return rng.choice(["admin", "deploy", "svc-payments", "app", "root", "ci-bot", "backup"])


def _host(rng: random.Random) -> str:
    company = rng.choice(COMPANY)
    return rng.choice(
        [f"db.{company}.internal", f"{company}-prod.cluster-c9x2.eu-west-1.rds.amazonaws.com",
         f"pg-{rng.randint(1, 9)}.{company}.net", "database", f"mq.{company}.corp"]
    )  # fmt: skip


def password(rng: random.Random) -> Secret:
    """A password a person or a generator chose; some start with template-like characters."""
    style = rng.randrange(5)
    if style == 0:  # generated: letters, digits, symbols, any first character
        core = draw(rng, ALNUM + SYMBOLS, rng.randint(12, 20))
        value = core if re.search(r"\d", core) else core + str(rng.randint(0, 9))
    elif style == 1:  # passphrase
        words = rng.sample(WORDS, rng.randint(3, 4))
        value = rng.choice("-._").join(words) + str(rng.randint(10, 99))
    elif style == 2:  # human: Word + year + symbol, or leet
        word = rng.choice(WORDS).capitalize()
        value = rng.choice(
            [f"{word}{rng.randint(1990, 2026)}{rng.choice('!#?')}",
             word.replace("a", "@").replace("o", "0").replace("e", "3") + str(rng.randint(10, 999))]
        )  # fmt: skip
    elif style == 3:  # starts like template syntax: `$3cr3t!x9`, `(Zx8kq2!`, `*...`, `%...`
        value = rng.choice(TEMPLATE_STARTS) + draw(rng, ALNUM, rng.randint(6, 10)) + "!9"
    else:  # a word and digits: looks like an identifier
        value = rng.choice(WORDS) + str(rng.randint(100, 99999))
    return Secret(value, user=_user(rng))


def _dsn(scheme: str, port: int, path: str, user_optional: bool = False) -> Maker:
    def make(rng: random.Random) -> Secret:
        pw = password(rng).value
        user = "" if user_optional and rng.random() < 0.5 else _user(rng)
        host = _host(rng)
        if scheme.startswith("mongodb+srv"):
            host, port_part = f"cluster0.{draw(rng, HEX, 5)}.mongodb.net", ""
        else:
            port_part = f":{port}"
        encoded = quote(pw, safe="!$&'()*+,=-._~")
        value = f"{scheme}://{user}:{encoded}@{host}{port_part}{path}"
        return Secret(value, (encoded,), user or "default")

    return make


def _prefixed(prefix: str, alphabet: str, n: int | tuple[int, int], suffix: str = "") -> Maker:
    def make(rng: random.Random) -> Secret:
        count = n if isinstance(n, int) else rng.randint(*n)
        return Secret(prefix + draw(rng, alphabet, count) + suffix)

    return make


def aws_access_key_id(rng: random.Random) -> Secret:
    return Secret(rng.choice(["AKIA", "ASIA"]) + draw(rng, string.ascii_uppercase + "234567", 16))


def azure_client_secret(rng: random.Random) -> Secret:
    return Secret(
        draw(rng, ALNUM, 3) + str(rng.randint(0, 9)) + "Q~" + draw(rng, B64URL + "~.", 34)
    )


def github_fine_grained(rng: random.Random) -> Secret:
    return Secret("github_pat_11" + draw(rng, UPPER_DIGITS, 20) + "_" + draw(rng, ALNUM, 59))


def slack_bot(rng: random.Random) -> Secret:
    a, b = draw(rng, string.digits, 12), draw(rng, string.digits, 13)
    return Secret(f"{rng.choice(['xoxb', 'xoxp'])}-{a}-{b}-{draw(rng, ALNUM, 24)}")


def slack_webhook(rng: random.Random) -> Secret:
    team, chan, key = draw(rng, UPPER_DIGITS, 8), draw(rng, UPPER_DIGITS, 10), draw(rng, ALNUM, 24)
    return Secret(f"https://hooks.slack.com/services/T{team}/B{chan}/{key}", (key,))


def stripe(rng: random.Random) -> Secret:
    prefix = rng.choice(["sk_live_", "rk_live_", "sk_test_"])
    return Secret(prefix + "51" + draw(rng, ALNUM, rng.choice([22, 97])))


def openai(rng: random.Random) -> Secret:
    if rng.random() < 0.5:
        return Secret("sk-" + draw(rng, ALNUM, 20) + "T3BlbkFJ" + draw(rng, ALNUM, 20))
    return Secret("sk-proj-" + draw(rng, B64URL, 156))


def jwt(rng: random.Random) -> Secret:
    def b64(obj: object) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    alg = rng.choice(["HS256", "RS256"])
    claims = {"sub": str(rng.randint(10**5, 10**9)), "role": rng.choice(["admin", "svc"]),
              "iat": rng.randint(1_600_000_000, 1_800_000_000)}  # fmt: skip
    sig = draw(rng, B64URL, 43 if alg == "HS256" else 342)
    return Secret(f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}.{sig}")


def _pem(label: str, body_start: str, lines: tuple[int, int], width: int = 64) -> Maker:
    def make(rng: random.Random) -> Secret:
        n = rng.randint(*lines)
        body = body_start + draw(rng, B64, n * width - len(body_start) - rng.randint(0, 40))
        rows = textwrap.wrap(body, width)
        head, tail = f"-----BEGIN {label}-----", f"-----END {label}-----"
        if label.startswith("PGP"):
            rows = ["Version: GnuPG v2", "", *rows, "=" + draw(rng, B64, 4)]
        value = "\n".join([head, *rows, tail])
        return Secret(value, tuple(r for r in rows if len(r) >= 16))

    return make


def basic_header(rng: random.Random) -> Secret:
    pair = f"{_user(rng)}:{password(rng).value}"
    return Secret(base64.b64encode(pair.encode()).decode())


def email(rng: random.Random) -> Secret:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        [f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}", f"{first}+ci",
         "billing-team", "ops", f"{first}{rng.randint(1, 99)}"]
    )  # fmt: skip
    domain = f"{rng.choice(COMPANY)}{rng.choice(['', '-payments', '-labs', 'corp'])}"
    if rng.random() < 0.3:
        domain = rng.choice(["mail", "eu", "corp", "dev"]) + "." + domain
    return Secret(f"{local}@{domain}.{rng.choice(TLDS)}")


def django_secret(rng: random.Random) -> Secret:
    chars = "abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)"
    prefix = "django-insecure-" if rng.random() < 0.5 else ""
    return Secret(prefix + draw(rng, chars, 50))


def discord(rng: random.Random) -> Secret:
    first = rng.choice("MNO") + draw(rng, B64URL, 23)
    return Secret(f"{first}.{draw(rng, B64URL, 6)}.{draw(rng, B64URL, 27)}")


def telegram(rng: random.Random) -> Secret:
    return Secret(f"{rng.randint(10**8, 10**10 - 1)}:AA{draw(rng, B64URL, 33)}")


_NO_HTTP = frozenset({"curl", "http_client"})
_KEYS_NOT_IN = frozenset(
    {"cli_flag", "curl", "http_client", "url_userinfo", "connection_string", "dockerfile",
     "compose", "properties", "sql"}
)  # fmt: skip
_DSN_NOT_IN = frozenset({"url_userinfo", "connection_string"})  # a DSN is both already

KINDS: tuple[Kind, ...] = (
    Kind("aws_access_key_id", aws_access_key_id, (("aws", "access", "key", "id"),), "aws:id"),
    Kind("aws_secret_access_key", _prefixed("", B64, 40),
         (("aws", "secret", "access", "key"), ("aws", "secret", "key")), "aws:secret"),
    Kind("gcp_api_key", _prefixed("AIza", B64URL, 35), (("google", "api", "key"), ("maps", "key")),
         "header:X-Goog-Api-Key"),
    Kind("gcp_oauth_client_secret", _prefixed("GOCSPX-", B64URL, 28),
         (("google", "client", "secret"), ("oauth", "client", "secret")), "basic"),
    Kind("azure_storage_key", _prefixed("", B64, 86, "=="),
         (("azure", "storage", "key"), ("storage", "account", "key")), "header:x-ms-key"),
    Kind("azure_client_secret", azure_client_secret,
         (("azure", "client", "secret"), ("aad", "client", "secret")), "basic"),
    Kind("github_pat", _prefixed("ghp_", ALNUM, 36), (("github", "token"), ("gh", "token"))),
    Kind("github_fine_grained_pat", github_fine_grained, (("github", "pat"), ("github", "token"))),
    Kind("gitlab_pat", _prefixed("glpat-", B64URL, 20), (("gitlab", "token"), ("ci", "token")),
         "header:PRIVATE-TOKEN"),
    Kind("slack_bot_token", slack_bot, (("slack", "bot", "token"), ("slack", "token"))),
    Kind("slack_webhook", slack_webhook, (("slack", "webhook", "url"), ("alerts", "webhook")),
         "url"),
    Kind("stripe_secret_key", stripe, (("stripe", "secret", "key"), ("stripe", "api", "key"))),
    Kind("twilio_api_key", _prefixed("SK", HEX, 32), (("twilio", "api", "key"),), "basic"),
    Kind("twilio_auth_token", _prefixed("", HEX, 32), (("twilio", "auth", "token"),), "basic"),
    Kind("sendgrid_api_key",
         lambda r: Secret(f"SG.{draw(r, B64URL, 22)}.{draw(r, B64URL, 43)}"),
         (("sendgrid", "api", "key"), ("mail", "api", "key"))),
    Kind("npm_token", _prefixed("npm_", ALNUM, 36), (("npm", "token"), ("npm", "auth", "token"))),
    Kind("pypi_token", _prefixed("pypi-AgEIcHlwaS5vcmc", B64URL, (60, 150)),
         (("pypi", "token"), ("twine", "password")), "basic"),
    Kind("huggingface_token", _prefixed("hf_", string.ascii_letters, 34),
         (("hf", "token"), ("huggingface", "token"))),
    Kind("openai_api_key", openai, (("openai", "api", "key"), ("openai", "key"))),
    Kind("anthropic_api_key", _prefixed("sk-ant-api03-", B64URL, 93, "AA"),
         (("anthropic", "api", "key"),), "header:x-api-key"),
    Kind("jwt", jwt, (("session", "token"), ("jwt",), ("id", "token"))),
    Kind("rsa_private_key", _pem("RSA PRIVATE KEY", "MIIEpAIBAAKCAQEA", (20, 26)),
         (("deploy", "key"), ("ssl", "private", "key")), "none", _KEYS_NOT_IN),
    Kind("ec_private_key", _pem("EC PRIVATE KEY", "MHcCAQEEI", (3, 3)),
         (("signing", "key"), ("ec", "private", "key")), "none", _KEYS_NOT_IN),
    Kind("openssh_private_key", _pem("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAA", (6, 8), 70),
         (("ssh", "private", "key"), ("deploy", "key")), "none", _KEYS_NOT_IN),
    Kind("pgp_private_key", _pem("PGP PRIVATE KEY BLOCK", "lQOYBF", (12, 16)),
         (("gpg", "private", "key"), ("signing", "key")), "none", _KEYS_NOT_IN),
    Kind("pkcs8_private_key", _pem("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", (25, 27)),
         (("private", "key"), ("service", "account", "key")), "none", _KEYS_NOT_IN),
    Kind("password", password,
         (("password",), ("db", "password"), ("admin", "password"), ("smtp", "pass"),
          ("passwd",), ("root", "pw"), ("redis", "password"), ("db", "pwd")), "basic"),
    Kind("basic_auth_header", basic_header, (("basic", "auth"), ("auth", "header")),
         "header:Authorization:Basic"),
    Kind("bearer_token", _prefixed("", ALNUM + "._-", (32, 64)),
         (("access", "token"), ("auth", "token"), ("bearer", "token"), ("api", "token"))),
    Kind("postgres_url", _dsn("postgresql", 5432, "/app"), (("database", "url"), ("db", "dsn")),
         "url", _DSN_NOT_IN),
    Kind("mysql_url", _dsn("mysql", 3306, "/shop"), (("database", "url"), ("mysql", "url")),
         "url", _DSN_NOT_IN),
    Kind("mongodb_url", _dsn("mongodb+srv", 0, "/?retryWrites=true"),
         (("mongo", "uri"), ("mongodb", "url")), "url", _DSN_NOT_IN),
    Kind("redis_url", _dsn("redis", 6379, "/0", user_optional=True),
         (("redis", "url"), ("cache", "url")), "url", _DSN_NOT_IN),
    Kind("amqp_url", _dsn("amqp", 5672, "/prod"), (("broker", "url"), ("amqp", "url")), "url",
         _DSN_NOT_IN),
    Kind("email", email,
         (("support", "email"), ("admin", "email"), ("contact",), ("maintainer",),
          ("notify", "address"), ("owner", "email")), "none",
         frozenset({"url_userinfo", "connection_string", "k8s_secret_data"})),
    Kind("generic_api_key", _prefixed("", ALNUM, (32, 48)),
         (("api", "key"), ("x", "api", "key"), ("api", "secret"), ("service", "key")),
         "header:X-API-Key"),
    Kind("hex_secret", _prefixed("", HEX, 64),
         (("webhook", "secret"), ("signing", "secret"), ("hmac", "key"), ("secret", "key"))),
    Kind("django_secret_key", django_secret, (("secret", "key"),), "none", _NO_HTTP),
    Kind("discord_bot_token", discord, (("discord", "token"), ("bot", "token")),
         "header:Authorization:Bot"),
    Kind("mailgun_api_key", _prefixed("key-", HEX, 32), (("mailgun", "api", "key"),), "basic"),
    Kind("databricks_token", _prefixed("dapi", HEX, 32), (("databricks", "token"),)),
    Kind("digitalocean_token", _prefixed("dop_v1_", HEX, 64), (("do", "token"),)),
    Kind("shopify_token", _prefixed("shpat_", HEX, 32), (("shopify", "access", "token"),),
         "header:X-Shopify-Access-Token"),
    Kind("telegram_bot_token", telegram, (("telegram", "bot", "token"),), "url"),
)  # fmt: skip


# --- names -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    """A label's words, rendered the way each syntax spells a name."""

    words: tuple[str, ...]

    @property
    def upper(self) -> str:
        return "_".join(self.words).upper()

    @property
    def snake(self) -> str:
        return "_".join(self.words)

    @property
    def kebab(self) -> str:
        return "-".join(self.words)

    @property
    def camel(self) -> str:
        return self.words[0] + "".join(w.capitalize() for w in self.words[1:])

    @property
    def pascal(self) -> str:
        return "".join(w.capitalize() for w in self.words)

    @property
    def dotted(self) -> str:
        return ".".join(self.words)

    @property
    def prose(self) -> str:
        return " ".join("API" if w == "api" else w for w in self.words)


# --- quoting helpers -------------------------------------------------------------------------


def sh(value: str) -> str:
    """`value` as one shell word: bare when safe, else single-quoted."""
    return value if re.fullmatch(r"[\w@%+=:,./-]+", value) else f"'{value}'"


def sh_dq(value: str) -> str:
    """Quote for text inside a shell string: single quotes where double quotes would expand."""
    return "'" if re.search(r"[$`!\\\"]", value) else '"'


def yaml_scalar(value: str, rng: random.Random) -> str:
    """A YAML scalar for `value`: bare where YAML reads it back as that string, else quoted."""
    import yaml

    bare_ok = "\n" not in value and ": " not in value and " #" not in value
    if bare_ok and rng.random() < 0.6:
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return rng.choice([f"'{value}'", json.dumps(value)])


def yaml_block(value: str, indent: str) -> str:
    return "|\n" + "\n".join(indent + line if line else "" for line in value.split("\n"))


def xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- contexts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    """One file holding one planted secret."""

    kind: str
    context: str
    path: str
    language: str
    text: str
    vanish: tuple[str, ...]
    # How to check it parses: python, javascript, json, yaml, toml, ini, xml, dotenv, shell,
    # notebook, or "" where Tailor has no parser for the syntax (Go, Dockerfile, Markdown).
    syntax: str
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Draw:
    """What a context renders from: the kind, the secret, its name, the random source."""

    kind: Kind
    secret: Secret
    name: Name
    rng: random.Random

    @property
    def v(self) -> str:
        return self.secret.value

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)


Render = Callable[[Draw], tuple[str, str, str, str]]  # path, language, text, syntax
CONTEXTS: dict[str, Render] = {}


def context(name: str) -> Callable[[Render], Render]:
    def register(fn: Render) -> Render:
        CONTEXTS[name] = fn
        return fn

    return register


_PY_TAIL = '\n\ndef main() -> None:\n    print("ready")\n'


@context("python")
def _python(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    if "\n" in v:
        body = f'{n.upper} = """{v}"""\n'
    else:
        body = d.pick(
            f'{n.upper} = "{v}"\n',
            f'client = Client({n.snake}="{v}", timeout=30)\n',
            f'CONFIG = {{\n    "{n.snake}": "{v}",\n    "region": "eu-west-1",\n}}\n',
            f'os.environ.setdefault("{n.upper}", "{v}")\n',
            f"{n.snake}: str = '{v}'\n",
        )
    return "app/settings.py", "Python", "import os\n\n" + body + _PY_TAIL, "python"


@context("javascript")
def _javascript(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    if "\n" in v:
        body = f"const {n.camel} = `{v}`;\n"
    else:
        body = d.pick(
            f'const {n.camel} = "{v}";\n',
            f"module.exports = {{\n  {n.camel}: '{v}',\n  region: 'eu-west-1',\n}};\n",
            f'process.env.{n.upper} = process.env.{n.upper} || "{v}";\n',
            f"export const {n.upper} = '{v}';\n",
        )
    return "src/config.js", "JavaScript", body, "javascript"


@context("go")
def _go(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    lit = f"`{v}`" if "\n" in v else f'"{v}"'
    body = d.pick(
        f"package config\n\nconst {n.pascal} = {lit}\n",
        f'package config\n\nvar Default = Config{{\n\t{n.pascal}: {lit},\n\tRegion: "eu",\n}}\n',
        f"package main\n\nfunc main() {{\n\t{n.camel} := {lit}\n\t_ = {n.camel}\n}}\n",
    )
    return "internal/config/config.go", "Go", body, ""


@context("yaml")
def _yaml(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    value = yaml_block(v, "    ") if "\n" in v else yaml_scalar(v, d.rng)
    body = d.pick(
        f"app:\n  name: billing\n  {n.snake}: {value}\n  replicas: 2\n",
        f"# settings for production\n{n.snake}: {value}\nlog_level: info\n",
    )
    if "\n" in v and body.startswith("#"):
        body = f"{n.snake}: {yaml_block(v, '  ')}\nlog_level: info\n"
    return "config/app.yaml", "YAML", body, "yaml"


@context("toml")
def _toml(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    value = f'"""\n{v}\n"""' if "\n" in v else d.pick(f'"{v}"', f"'{v}'")
    body = f'[service]\nname = "billing"\n{n.snake} = {value}\ntimeout = 30\n'
    return "config/app.toml", "TOML", body, "toml"


@context("ini")
def _ini(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    value = v.replace("\n", "\n    ")
    sep = d.pick(" = ", "=", ": ")
    body = f"[default]\nhost = api.internal\n{n.snake}{sep}{value}\nretries = 3\n"
    return d.pick("config/app.ini", "setup.cfg"), "INI", body, "ini"


@context("properties")
def _properties(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    key = d.pick(n.dotted, "app." + n.dotted, "spring.datasource." + n.words[-1])
    body = f"server.port=8080\n{key}{d.pick('=', ' = ', ': ')}{v}\nlogging.level.root=INFO\n"
    return "src/main/resources/application.properties", "Java Properties", body, ""


@context("json")
def _json(d: Draw) -> tuple[str, str, str, str]:
    n = d.name
    key = d.pick(n.snake, n.camel)
    body = json.dumps({"service": "billing", key: d.v, "retries": 3}, indent=2) + "\n"
    return "config/secrets.json", "JSON", body, "json"


@context("xml")
def _xml(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, xml_text(d.v)
    body = d.pick(
        f"<settings>\n  <servers>\n    <server>\n      <id>deploy</id>\n"
        f"      <username>{d.secret.user}</username>\n      <{n.camel}>{v}</{n.camel}>\n"
        f"    </server>\n  </servers>\n</settings>\n",
        f'<configuration>\n  <appSettings>\n    <add key="{n.pascal}" value="{v}" />\n'
        f"  </appSettings>\n</configuration>\n",
    )
    return "config/settings.xml", "XML", body, "xml"


@context("dotenv")
def _dotenv(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    if "\n" in v:
        line = f'{n.upper}="{v}"'
    else:
        line = d.pick(f"{n.upper}={sh(v)}", f"export {n.upper}={sh(v)}", f"{n.upper}='{v}'")
    body = f"# local settings\nAPP_ENV=production\n{line}\nLOG_LEVEL=info\n"
    return d.pick(".env", "deploy/.env.production"), "Dotenv", body, "dotenv"


@context("dockerfile")
def _dockerfile(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    line = d.pick(f"ENV {n.upper}={sh(v)}", f"ENV {n.upper} {v}", f"ARG {n.upper}={sh(v)}")
    body = f'FROM python:3.12-slim\nWORKDIR /app\n{line}\nCOPY . .\nCMD ["python", "-m", "app"]\n'
    return "Dockerfile", "Dockerfile", body, ""


@context("compose")
def _compose(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    env = d.pick(f"      - {n.upper}={v}", f"      {n.upper}: {yaml_scalar(v, d.rng)}")
    if env.startswith("      -") and yaml_scalar(f"{n.upper}={v}", random.Random(0))[0] in "'\"":
        env = f"      - '{n.upper}={v}'"
    body = (
        "services:\n  api:\n    image: acme/api:1.4\n    environment:\n"
        f"{env}\n    ports:\n      - '8080:8080'\n"
    )
    return "docker-compose.yml", "YAML", body, "yaml"


def _k8s(name: str, data: str, entries: str) -> str:
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: billing\n"
        f"type: Opaque\n{data}:\n{entries}"
    )


@context("k8s_secret")
def _k8s_secret(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    value = yaml_block(v, "    ") if "\n" in v else yaml_scalar(v, d.rng)
    body = _k8s("api-secrets", "stringData", f"  {d.pick(n.kebab, n.snake)}: {value}\n")
    return "deploy/k8s/secret.yaml", "YAML", body, "yaml"


@context("k8s_secret_data")
def _k8s_secret_data(d: Draw) -> tuple[str, str, str, str]:
    encoded = base64.b64encode(d.v.encode()).decode()
    body = _k8s("api-secrets", "data", f"  {d.pick(d.name.kebab, d.name.snake)}: {encoded}\n")
    return "deploy/k8s/secret.yaml", "YAML", body, "yaml"


@context("cli_flag")
def _cli_flag(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    line = d.pick(
        f"./bin/deploy --env prod --{n.kebab} {sh(v)}",
        f"mytool login --{n.kebab}={sh(v)} --region eu-west-1",
        f"docker run --rm -e {n.upper}={sh(v)} acme/api:1.4",
        f"helm upgrade --install api ./chart --set secrets.{n.camel}={sh(v)}",
        f"{n.upper}={sh(v)} python -m app.worker",
    )
    return (
        "scripts/deploy.sh",
        "Shell",
        f"#!/usr/bin/env bash\nset -euo pipefail\n{line}\n",
        "shell",
    )


def _http_parts(d: Draw) -> tuple[str, str]:
    """(header name, header value) for kinds sent in a header."""
    http = d.kind.http
    if http == "bearer":
        return "Authorization", f"Bearer {d.v}"
    _, header, *scheme = http.split(":")
    return header, " ".join([*scheme, d.v])


@context("curl")
def _curl(d: Draw) -> tuple[str, str, str, str]:
    http, v, user = d.kind.http, d.v, d.secret.user
    url = f"https://api.{d.rng.choice(COMPANY)}.io/v1/items"
    if http.startswith("aws:"):
        pair = f"{v}:$AWS_SECRET_ACCESS_KEY" if http == "aws:id" else f"$AWS_ACCESS_KEY_ID:{v}"
        q = "'" if "$" in v else '"'
        line = f'curl --aws-sigv4 "aws:amz:eu-west-1:s3" --user {q}{pair}{q} https://acme.s3.amazonaws.com/a.csv'
    elif http == "basic":
        pair = sh(user + ":" + v)
        line = d.pick(f"curl -sS -u {pair} {url}", f"curl --user {pair} {url}")
    elif http == "url":
        line = f"curl -X POST -H 'Content-Type: application/json' -d '{{\"text\": \"hi\"}}' {sh(v)}"
    elif http == "none":  # an address in a form field
        line = f"curl -sS -d {sh('email=' + v)} {url}"
    else:
        header, value = _http_parts(d)
        q = sh_dq(value)
        line = f"curl -sS -H {q}{header}: {value}{q} {url}"
    return "scripts/call-api.sh", "Shell", f"#!/bin/sh\n{line}\n", "shell"


@context("url_userinfo")
def _url_userinfo(d: Draw) -> tuple[str, str, str, str]:
    encoded = quote(d.v, safe="!$&'()*+,=-._~")
    user = d.secret.user if d.kind.http == "basic" else d.pick("x-access-token", "oauth2", "ci")
    url = f"https://{user}:{encoded}@{d.pick('git.acme.internal', 'github.com')}/acme/billing.git"
    where = d.pick("python", "yaml", "shell")
    if where == "python":
        return "app/repos.py", "Python", f'REMOTE = "{url}"\n', "python"
    if where == "yaml":
        return "config/mirror.yaml", "YAML", f"mirror:\n  remote: {url}\n", "yaml"
    return "scripts/mirror.sh", "Shell", f"git clone {sh(url)} /srv/billing\n", "shell"


@context("http_client")
def _http_client(d: Draw) -> tuple[str, str, str, str]:
    http, v, user = d.kind.http, d.v, d.secret.user
    if http.startswith("aws:"):
        kw = "aws_access_key_id" if http == "aws:id" else "aws_secret_access_key"
        line = f's3 = boto3.client("s3", region_name="eu-west-1", {kw}="{v}")'
    elif http == "basic":
        choice = d.pick("tuple", "requests", "aiohttp", "go", "axios", "smtp")
        if choice == "go":
            call = f'req.SetBasicAuth("{user}", "{v}")'
            body = f"package api\n\nfunc sign(req *http.Request) {{\n\t{call}\n}}\n"
            return "internal/api/client.go", "Go", body, ""
        if choice == "axios":
            body = (f"const res = await axios.get(url, {{\n  auth: {{ username: '{user}', "
                    f"password: '{v}' }},\n}});\n")  # fmt: skip
            return "src/api.js", "JavaScript", body, "javascript"
        line = {
            "tuple": f'resp = requests.get(url, auth=("{user}", "{v}"), timeout=10)',
            "requests": f'session.auth = HTTPBasicAuth("{user}", "{v}")',
            "aiohttp": f'auth = aiohttp.BasicAuth("{user}", "{v}")',
            "smtp": f'server.login("{user}", "{v}")',
        }[choice]
    elif http == "url":
        line = d.pick(f'requests.post("{v}", json={{"text": "deployed"}})',
                      f'engine = create_engine("{v}")')  # fmt: skip
    elif http == "none":
        line = f'requests.post(url, json={{"email": "{v}", "role": "admin"}})'
    else:
        header, value = _http_parts(d)
        if d.rng.random() < 0.3:
            body = (
                f"const res = await fetch(url, {{\n  headers: {{ '{header}': '{value}' }},\n}});\n"
            )
            return "src/api.js", "JavaScript", body, "javascript"
        line = d.pick(
            f'resp = requests.get(url, headers={{"{header}": "{value}"}})',
            f'client = httpx.Client(headers={{"{header}": "{value}"}}, timeout=10)',
        )
    return "app/client.py", "Python", f"import requests\n\n{line}\n", "python"


@context("connection_string")
def _connection_string(d: Draw) -> tuple[str, str, str, str]:
    v, user = d.v, d.secret.user
    if d.kind.name == "azure_storage_key":
        line = (f'CONN = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={v};'
                f'EndpointSuffix=core.windows.net"')  # fmt: skip
    elif d.kind.name != "password":
        line = (f'BUS = "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;'
                f'SharedAccessKey={v}"')  # fmt: skip
    else:
        line = d.pick(
            f'DSN = "host=db.internal port=5432 dbname=app user={user} password={v}"',
            f'CONN = "Server=tcp:sql.acme.net,1433;Database=app;User ID={user};Password={v};"',
            f'URL = "jdbc:postgresql://db.internal:5432/app?user={user}&password={quote(v)}"',
            f'r = redis.Redis(host="cache", port=6379, password="{v}")',
        )
    return "app/db.py", "Python", f"import os\n\n{line}\n", "python"


@context("docstring")
def _docstring(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    if "\n" in v:
        inner = "Test key:\n\n" + textwrap.indent(v, "        ")
    else:
        inner = d.pick(
            f"The {n.prose} is {v} (rotate it after the demo).",
            f"{n.prose.capitalize()}: {v}",
            f'Example:\n\n        >>> client = Client({n.snake}="{v}")',
        )
    body = (
        f'def connect() -> None:\n    """Connect to the staging service.\n\n    {inner}\n    """\n'
    )
    return "app/staging.py", "Python", body, "python"


@context("comment")
def _comment(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    if "\n" in v:
        lines = "\n".join("# " + line if line else "#" for line in v.split("\n"))
        return "app/keys.py", "Python", f"{lines}\nKEY_PATH = 'keys/deploy.pem'\n", "python"
    style = d.pick("py", "py_todo", "js", "go")
    if style == "js":
        body = f"// {n.camel} = '{v}'\nconst timeout = 30;\n"
        return "src/client.js", "JavaScript", body, "javascript"
    if style == "go":
        return "cmd/main.go", "Go", f"package main\n\n// {n.prose}: {v}\nfunc main() {{}}\n", ""
    line = f"# {n.prose}: {v}" if style == "py" else f"# TODO remove before release: {n.upper}={v}"
    return "app/jobs.py", "Python", f"{line}\nTIMEOUT = 30\n", "python"


@context("notebook")
def _notebook(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    if "\n" in v:
        code = f'{n.snake} = """{v}"""\n'
    else:
        code = d.pick(
            f'import os\nos.environ["{n.upper}"] = "{v}"\n',
            f"%env {n.upper}={v}\n",
            f'{n.snake} = "{v}"\nprint(len({n.snake}))\n',
        )
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Exploration\n"]},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
         "source": code.splitlines(keepends=True)},
        {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [],
         "source": ["import pandas as pd\n", "df = pd.DataFrame({'a': [1, 2]})\n"]},
    ]  # fmt: skip
    doc = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return "notebooks/explore.ipynb", "Jupyter Notebook", json.dumps(doc, indent=1), "notebook"


@context("markdown")
def _markdown(d: Draw) -> tuple[str, str, str, str]:
    n, v = d.name, d.v
    if "\n" in v:
        body = f"## Test key\n\n```\n{v}\n```\n"
    else:
        body = d.pick(
            f"## Setup\n\n```bash\nexport {n.upper}={sh(v)}\n```\n",
            f"Use the {n.prose} `{v}` for the staging account.\n",
            f"| Variable | Value |\n|---|---|\n| `{n.upper}` | `{v}` |\n",
        )
    return "README.md", "Markdown", body, ""


@context("sql")
def _sql(d: Draw) -> tuple[str, str, str, str]:
    v, user = d.v, d.secret.user
    if d.kind.name == "password":
        line = d.pick(
            f"CREATE USER {user.replace('-', '_')} WITH PASSWORD '{v}';",
            f"ALTER USER '{user}'@'%' IDENTIFIED BY '{v}';",
        )
    elif d.kind.name == "email":
        line = f"INSERT INTO users (name, email) VALUES ('Jane', '{v}');"
    else:
        line = f"INSERT INTO api_keys (name, {d.name.snake}) VALUES ('ci', '{v}');"
    return "db/seed.sql", "SQL", f"BEGIN;\n{line}\nCOMMIT;\n", ""


# Contexts that only some kinds have: credentials handed to databases, SQL seeds.
_ONLY_FOR = {
    "connection_string": {"password", "azure_storage_key", "generic_api_key"},
    "sql": {"password", "email", "generic_api_key", "hex_secret"},
}


def contexts_of(kind: Kind) -> list[str]:
    """The contexts `kind` is written in."""
    return [
        c
        for c in CONTEXTS
        if c not in kind.not_in and (c not in _ONLY_FOR or kind.name in _ONLY_FOR[c])
    ]


def planted(
    seed: int = 0,
    samples: int = 3,
    kinds: list[str] | None = None,
    contexts: list[str] | None = None,
) -> Iterator[Planted]:
    """`samples` files per (kind, context), each with a fresh secret; deterministic per seed."""
    rng = random.Random(seed)
    for kind in KINDS:
        if kinds is not None and kind.name not in kinds:
            continue
        for ctx in contexts_of(kind):
            if contexts is not None and ctx not in contexts:
                continue
            for _ in range(samples):
                secret = kind.make(rng)
                name = Name(rng.choice(kind.labels))
                d = Draw(kind, secret, name, rng)
                path, language, text, syntax = CONTEXTS[ctx](d)
                vanish = _vanish(ctx, secret, text)
                yield Planted(kind.name, ctx, path, language, text, vanish, syntax)


def _vanish(ctx: str, secret: Secret, text: str) -> tuple[str, ...]:
    """What must be gone, as the context wrote it (escaped, encoded)."""
    if ctx == "k8s_secret_data":
        return (base64.b64encode(secret.value.encode()).decode(),)
    out = []
    for s in secret.must_vanish():
        forms = [s, xml_text(s), json.dumps(s)[1:-1], quote(s), quote(s, safe="!$&'()*+,=-._~")]
        out.extend(f for f in dict.fromkeys(forms) if f in text)
    assert out, f"{ctx}: the planted secret is not in the text"
    return tuple(out)
