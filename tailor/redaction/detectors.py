"""Tailor's own secret and PII detectors: what detect-secrets misses, and the fast common cases.

Each detector is a regex plus either the group that holds the value to replace (with an
optional check that rejects look-alikes) or a `judge` that decides from the whole match and
where the line sits. They run in the order listed: specific shapes (key blocks, vendor tokens,
URL and command-line credentials) before generic ones (names that hold secrets, entropy), so a
value is counted under its most precise kind.

A secret behind a name (`DB_PASSWORD=...`, `"apiKey": "..."`, `--token ...`, `<password>...`)
is judged by the name's words and the value's shape (`secret_values`). A bare value in code is
an expression unless the line puts it in a string, a comment or a docstring; in configuration
files and shell scripts (`CONFIG_LANGUAGES`) bare values are literals.

Searching every file with every regex costs seconds per MB, so each detector names triggers,
and `regex` runs only on the lines a trigger flags (see `tailor.redaction.suspects`):
- `token:<kind>`: a run of 15+ token characters that starts with the detector's `prefix`;
- `re:<name>`: a literal-led regex from ANCHORS;
- anything else: a lower-case word.
A detector without triggers runs on the whole text.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from tailor.redaction.values import (
    Strength,
    base64_text,
    echoes_name,
    high_entropy,
    is_literal,
    is_password_name,
    is_template,
    looks_like_path,
    name_words,
    names_a_field,
    prose_secret,
    qualified,
    secretish,
    strength,
    word_set,
    yaml_node,
)

API_KEY = "<API_KEY>"
TOKEN = "<TOKEN>"
PASSWORD = "<PASSWORD>"
SECRET = "<SECRET>"
EMAIL = "<EMAIL>"
IP_ADDRESS = "<IP_ADDRESS>"
PRIVATE_KEY = "<PRIVATE_KEY>"
PLACEHOLDERS = (API_KEY, TOKEN, PASSWORD, SECRET, EMAIL, IP_ADDRESS, PRIVATE_KEY)

# Languages where `key: value` / `KEY=value` holds literal values rather than expressions.
CONFIG_LANGUAGES = frozenset(
    {"YAML", "Shell", "TOML", "Dockerfile", "Makefile", "Markdown", "SQL", "INI", "Dotenv",
     "Java Properties"}
)  # fmt: skip
# The same for files named so, whatever language a team's allowlist gives them.
CONFIG_SUFFIXES = (".ini", ".cfg", ".conf", ".properties", ".toml", ".yaml", ".yml", ".sh")
# Files where a raw `<` is syntax, and shells where a bare `<X>` is a redirection.
MARKUP_LANGUAGES = frozenset({"XML", "HTML"})
MARKUP_SUFFIXES = (".xml", ".config", ".csproj", ".props", ".targets", ".plist", ".xaml", ".html")
SHELL_LANGUAGES = frozenset({"Shell", "Dockerfile", "Makefile", "Dotenv"})
NOTEBOOK = "Jupyter Notebook"
# Languages whose comments start with `//` (and where `#` starts none).
C_FAMILY = frozenset(
    {"JavaScript", "TypeScript", "Java", "Go", "Rust", "C", "C++", "C#", "Kotlin", "Scala",
     "Swift", "Dart", "PHP"}
)  # fmt: skip


@dataclass(frozen=True)
class Found:
    """A span of the matched string to replace, and what it is."""

    start: int
    end: int
    kind: str
    placeholder: str


@dataclass
class Where:
    """The file a line belongs to: how its bare values read and how placeholders are written."""

    text: str
    language: str
    config: bool
    markup: bool = False
    _blocks: list[tuple[int, int]] | None = field(default=None, repr=False)

    def literal_at(self, line: str, pos: int, row: int) -> bool:
        """Whether `line[pos:]` is literal text: config, a string, a comment, a docstring."""
        if self.config:
            return True
        stripped = line.lstrip()
        c_family = self.language in C_FAMILY
        if c_family and stripped.startswith(("//", "/*", "*")):
            return True
        if self.language == NOTEBOOK and stripped.startswith(("%", "!")):
            return True  # IPython magics and shell escapes take their arguments literally
        if _state_at(line, pos, hash_comments=not c_family):
            return True
        return self._in_block(row)

    def render(self, placeholder: str, text: str, pos: int) -> str:
        """`placeholder` as written at `text[pos]`, so the file still parses.

        In XML and HTML a raw `<` opens a tag: it is escaped. In a shell, a bare `<X>` is a
        redirection: outside quotes and comments it is single-quoted.
        """
        if self.markup:
            return "&lt;" + placeholder[1:-1] + "&gt;"
        if self.language in SHELL_LANGUAGES:
            start = text.rfind("\n", 0, pos) + 1
            if not _state_at(text[start:pos], pos - start, hash_comments=True, shell=True):
                return f"'{placeholder}'"
        return placeholder

    def _in_block(self, row: int) -> bool:
        if self._blocks is None:
            self._blocks = _block_rows(self.text)
        return any(first <= row <= last for first, last in self._blocks)


def _state_at(line: str, pos: int, *, hash_comments: bool, shell: bool = False) -> str:
    """At `pos`: the open quote character, `#` in a comment, or "" in code."""
    quote, i = "", 0
    while i < pos:
        c = line[i]
        if quote:
            if c == "\\" and not (shell and quote == "'"):  # a shell's '...' escapes nothing
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c == "#" and hash_comments and (not shell or i == 0 or line[i - 1].isspace()):
            return "#"  # (a shell's `#` starts a comment only at a word's start)
        elif c == "/" and not hash_comments and line.startswith("//", i):
            return "#"  # (in Python, `//` divides)
        i += 1
    return quote


_BLOCK_DELIMITERS = re.compile(r"\"\"\"|'''|/\*|\*/")


def _block_rows(text: str) -> list[tuple[int, int]]:
    """(first, last) rows inside triple-quoted strings and /* */ comments, past their opening."""
    rows: list[tuple[int, int]] = []
    opener, start_row, row, last = "", 0, 0, 0
    for m in _BLOCK_DELIMITERS.finditer(text):
        row += text.count("\n", last, m.start())
        last = m.start()
        token = m.group()
        if not opener and token != "*/":
            opener, start_row = ("*/" if token == "/*" else token), row
        elif opener and token == opener:
            if row > start_row:
                rows.append((start_row + 1, row))
            opener = ""
    return rows


Judge = Callable[[re.Match[str], Where, int], "Found | None"]


@dataclass(frozen=True)
class Detector:
    """One kind of secret: where it is, what replaces it, and what it must not be."""

    kind: str
    placeholder: str
    regex: re.Pattern[str]
    group: int = 0
    accept: Callable[[str], bool] | None = None
    config_only: bool = False
    triggers: tuple[str, ...] = ()
    # For vendor tokens: a regex the token's first characters match (see module docstring).
    prefix: str | None = None
    # Decides from the match, the file and the row instead of `group` and `accept`.
    judge: Judge | None = None
    # What the one-pass scanner looks for instead of `regex`: a looser regex that matches on
    # every line `regex` does and ends at one place per hit (a regex ending in a run of any
    # length reports a hit at every end: thousands of callbacks).
    prefilter: re.Pattern[str] | None = None
    # Where a match can start, found in the ASCII-lower-cased text: `regex` is then tried
    # only there. Python's `re` is ~5x slower case-insensitively than on lower-cased text.
    seed: re.Pattern[str] | None = None

    def search(self, text: str, pos: int) -> re.Match[str] | None:
        """The first match at or after `pos`."""
        if self.seed is None:
            return self.regex.search(text, pos)
        for hit in self.seed.finditer(text.translate(_ASCII_LOWER), pos):
            m = self.regex.match(text, hit.start())
            if m is not None:
                return m
        return None


# str.lower() may change a text's length (`İ`); this keeps every offset.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _token(kind: str, placeholder: str, prefix: str, pattern: str) -> Detector:
    """A vendor token: a fixed prefix and a shape."""
    return Detector(kind, placeholder, _rx(pattern), triggers=(f"token:{kind}",), prefix=prefix)


# --- names that hold secrets -----------------------------------------------------------------

# Every word a secret's name contains; the regexes demand one, `strength` judges the whole name.
_SECRET_WORD = r"(?:pass|pwd|pw|secret|token|key|auth|cred|signature|salt|hmac|jwt|dsn|bearer)"
_NAME = rf"[\w.$\-]*?{_SECRET_WORD}[\w.\-]*"


def _whole_word(words: str) -> str:
    """A secret word as a name holds it: `key`, `Key`, `KEY`, then no more of the same case.

    Case-sensitive, for the scanner: `keys`, `keyword`, `author` and `pwidth` hold no secret
    word, and `KeyError` and `dbPasswordHash` still reach the judge.
    """
    forms = []
    for w in words.split():
        forms.append(f"(?:{w}|{w.capitalize()})(?:[^a-z\\n][\\w.\\-]*)?")
        forms.append(f"{w.upper()}(?:[^A-Z\\n][\\w.\\-]*)?")
    return "(?:" + "|".join(forms) + ")"


_WHOLE_SECRET_WORD = _whole_word(
    "password passwd passphrase pass pwd pw secrets secret token key auth credentials creds cred "
    "signature salt hmac jwt dsn bearer"
)
_SEED = re.compile(rf"(?<![\w.$\-])[\w.$\-]*?{_SECRET_WORD}")  # a name's start, lower case
_QUOTED = r"[bBrRuUfF]{0,2}\"[^\"\n]*\"|[bBrRuUfF]{0,2}'[^'\n]*'|`[^`\n]*`"
# A bare value ends at a space or a quote, or before the next `;Name=` or `&name=` pair of a
# connection string or query.
_BARE = r"(?:[^\s\"'`;&]|[;&](?![A-Za-z_][\w .\-]*=))+"
_VALUE = rf"{_QUOTED}|{_BARE}"
# name = value, name: value, name: type = value, "name": value, name => value, ("NAME", value),
# name is value (prose), | `NAME` | `value` | (Markdown), NAME = env || "default".
_SEP = (
    r"\s*=\s*[^\"'`\n=]*?(?:\|\||\?\?|\bor\b)\s*(?=[\"'`])"
    r"|\s*:\s*[A-Za-z_][\w\[\]., |]{0,40}?\s+=\s*"  # `password: str = ...`
    r"|\s*(?:=>|:=|[=!]==?|\+?=|:)\s*"
    r"|\s*,\s*(?=[bBrRuU]{0,2}[\"'])"
    r"|\s+is\s+"
    r"|\s*\|\s*(?=`)"
)
_PROSE_TAIL = r"(?: [A-Za-z]{3,12})?"  # `auth header: ...`, `secret key is ...`
_PROSE_NAME = re.compile(r"(?:([A-Za-z]+) )?([A-Za-z]+) $")
# Words before a one-word name that qualify nothing: articles, verbs, adverbs (`can pass "x"`).
_STOP_WORDS = word_set(
    "the a an our your my this that use with and or of for to set is are be can could will would "
    "should must may might only just also always never then simply not we you they it i please "
    "do does did let lets"
)
_SENTENCE_WORDS = word_set("the your to is of for please enter must be not and with this")


def _name(
    m: re.Match[str], line: str, prose: bool, compound: bool = True
) -> tuple[list[str], Strength]:
    """The name's words and strength; a plain word in prose takes the words before it."""
    name = m["name"].lstrip("-$")
    words = name_words(name)
    level = strength(words)
    if prose and name.isalpha() and level is not Strength.STRONG:
        before = _PROSE_NAME.search(line, 0, m.start("name"))
        qualifiers = [w.lower() for w in before.groups() if w] if before else []
        while qualifiers and _stop_word(qualifiers[0]):
            qualifiers.pop(0)  # `Use the aad client secret`: `aad client` qualifies `secret`
        if qualifiers and not any(_stop_word(w) for w in qualifiers):
            level = qualified(qualifiers, words, compound)
            words = qualifiers + words
    return words, level


def _stop_word(word: str) -> bool:
    return word in _STOP_WORDS or word.endswith("ly")  # adverbs: `optionally pass`


def _placeholder(words: list[str]) -> tuple[str, str]:
    if is_password_name(words):
        return "password_assignment", PASSWORD
    if words[-1] in ("token", "jwt", "bearer", "pat") or words[-1].endswith("token"):
        return "secret_assignment", TOKEN
    if words[-1] == "apikey" or words[-2:] == ["api", "key"]:
        return "secret_assignment", API_KEY
    return "secret_assignment", SECRET


def _unquote(value: str) -> tuple[int, str] | None:
    """(offset, text) inside the quotes of a quoted value, or None for a bare one."""
    q = re.match(r"[bBrRuUfF]{0,2}([\"'`])", value)
    if q is None or len(value) <= q.end() or not value.endswith(q.group(1)):
        return None
    return q.end(), value[q.end() : -1]


def _sentence(value: str) -> bool:
    """`Enter the password:`: words of a prompt or a message, not a passphrase."""
    words = value.lower().split()
    return value.rstrip().endswith(":") or (
        len(words) >= 3 and any(w in _SENTENCE_WORDS for w in words)
    )


def _quoted_ok(inner: str, level: Strength) -> bool:
    if level is Strength.WEAK:
        return secretish(inner)
    return is_literal(inner) and not _sentence(inner)


def _bare_ok(value: str, level: Strength, literal: Callable[[], bool], config: bool) -> bool:
    """A bare value: a literal in config; in code, one that reads like a secret in a string,
    a comment or a docstring (`literal`, called last: it may scan the file for docstrings)."""
    if value.startswith("--"):
        return False
    if not config:
        return prose_secret(value) and (level is Strength.STRONG or secretish(value)) and literal()
    if yaml_node(value) or looks_like_path(value):
        return False
    return is_literal(value) if level is Strength.STRONG else secretish(value)


def _first_argument(m: re.Match[str], words: list[str]) -> bool:
    """`getenv("DB_PASSWORD", "x")`: a quoted variable name opening a call pairs with the next
    value; `check(password, "x")`, `(b'password', b'salt')` and lists of strings do not."""
    name = m["name"]
    if not m["close"] or not (len(words) > 1 or name.isupper()):
        return False
    before = m.string[: m.start("name")].rstrip()
    return before.endswith(('("', "('")) or before.endswith(('( "', "( '"))


def _keyed(m: re.Match[str], where: Where, row: int) -> Found | None:
    """A secret behind a name: `PASSWORD=...`, `"apiKey": "..."`, `--token ...`, `ENV K v`."""
    sep = m.groupdict().get("sep")
    op = "" if sep is None else sep.strip()  # "" for `--flag value`, `ENV K v`, `PASS 'v'`
    words, level = _name(m, m.string, prose=op in ("", "is", ":"), compound=op != "")
    if level is Strength.NONE or (op == "," and not _first_argument(m, words)):
        return None
    quoted = _unquote(m["value"])
    if quoted is not None and echoes_name(quoted[1], words):
        return None
    if quoted is not None:
        span = _quoted_span(m, quoted, level, spaced=sep is None)
    else:
        span = _bare_span(m, where, row, level, op, spaced=sep is None)
    if span is None:
        return None
    kind, placeholder = _placeholder(words)
    return Found(*span, kind, placeholder)


def _quoted_span(
    m: re.Match[str], quoted: tuple[int, str], level: Strength, spaced: bool
) -> tuple[int, int] | None:
    offset, inner = quoted
    if spaced and m["value"].startswith("`") and not prose_secret(inner):
        return None  # prose's `code span` is mostly a name: `pass \`input_ids\``
    if not _quoted_ok(inner, level):
        return None
    start = m.start("value") + offset
    return start, start + len(inner)


def _bare_span(
    m: re.Match[str], where: Where, row: int, level: Strength, op: str, spaced: bool
) -> tuple[int, int] | None:
    line, raw, start = m.string, m["value"], m.start("value")
    if is_template(raw):
        return None  # before trimming: `?token={session_token}` ends with its brace
    value = raw if where.config and op != "is" else raw.rstrip(".,;:)]}>")
    if op == "is":  # prose: a value that reads like one, in a comment, string or docstring
        if not prose_secret(value) or (level is Strength.WEAK and not secretish(value)):
            return None
        if not where.literal_at(line, start, row):
            return None
    elif spaced and value.startswith("-") and m.group().lstrip().startswith("-"):
        return None  # `--no-password --verbose`: the next flag, not a value
    elif not _bare_ok(value, level, lambda: where.literal_at(line, start, row), where.config):
        return None
    return start, start + len(value)


def _xml_value(m: re.Match[str], where: Where, row: int) -> Found | None:
    """`<password>...</password>`, `<add key="DbPassword" value="..."/>`: XML text is literal."""
    words = name_words(m["name"])
    level = strength(words)
    value = m["value"].strip()
    if level is Strength.NONE or not value:
        return None
    ok = is_literal(value) if level is Strength.STRONG else secretish(value)
    if not ok or looks_like_path(value):
        return None
    start = m.start("value") + m["value"].index(value)
    kind, placeholder = _placeholder(words)
    return Found(start, start + len(value), kind, placeholder)


def _quoted_password(m: re.Match[str], where: Where, row: int) -> Found | None:
    """The quoted password of `auth=("u", "p")`, `.login("u", "p")`, `IDENTIFIED BY 'p'`."""
    quoted = _unquote(m["value"])
    if quoted is None:
        return None
    offset, inner = quoted
    if not is_literal(inner):
        return None
    start = m.start("value") + offset
    return Found(start, start + len(inner), "basic_auth", PASSWORD)


def _auth_scheme(m: re.Match[str], where: Where, row: int) -> Found | None:
    """`Bearer <token>`, `Basic <base64>`; `Token`/`Bot`/`ApiKey` only after `Authorization`."""
    scheme, value = m["scheme"].lower(), m["value"]
    if scheme not in ("bearer", "basic") and "authorization" not in m.string[: m.start()].lower():
        return None
    if is_template(value) or names_a_field(value):
        return None
    if not (base64_text(value) or secretish(value) or high_entropy(value)):
        return None
    return Found(m.start("value"), m.end("value"), "authorization_header", TOKEN)


def _userinfo(kind: str) -> Judge:
    """The password of `user:password` in a URL or a `curl -u` argument."""

    def judge(m: re.Match[str], where: Where, row: int) -> Found | None:
        if not is_literal(m["value"]):
            return None
        return Found(m.start("value"), m.end("value"), kind, PASSWORD)

    return judge


# --- addresses ------------------------------------------------------------------------------

_DOC_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def _routable_ipv4(value: str) -> bool:
    try:
        addr = ipaddress.IPv4Address(value)
    except ValueError:
        return False
    # Loopback, "any" and netmasks are configuration, not someone's address; four single
    # digits (1.2.3.4) are far more often a version than a host; documentation ranges
    # (RFC 5737) are no one's.
    if all(len(part) == 1 for part in value.split(".")):
        return False
    if addr.is_loopback or addr.is_unspecified or value.startswith("255."):
        return False
    return not any(addr in net for net in _DOC_NETS)


def _ipv6(value: str) -> bool:
    # Three or more groups with a digit: not a slice (`a[1::2]`) nor C++ scope (`std::map`).
    if sum(1 for g in value.split(":") if g) < 3 or not any(c.isdigit() for c in value):
        return False
    try:
        addr = ipaddress.IPv6Address(value)
    except ValueError:
        return False
    if addr.is_loopback or addr.is_unspecified:
        return False
    return not any(addr in net for net in _DOC_NETS)  # RFC 3849


# Documentation-reserved names (RFC 2606, RFC 6761): addresses there belong to no one.
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net")
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost"})
# File extensions that are no top-level domain a mailbox lives under (`report@v2.json`).
_FILE_SUFFIXES = word_set(
    "py pyc pyi js mjs cjs ts jsx tsx txt json yaml yml html htm css png jpg jpeg gif svg exe "
    "dll zip gz tar log csv xml ini cfg conf lock toml java cpp hpp rst ipynb whl egg bak tmp "
    "pem crt pdf docx"
)


def _email(m: re.Match[str], where: Where, row: int) -> Found | None:
    domain = m["domain"].lower()
    labels = domain.split(".")
    if domain in _RESERVED_DOMAINS or domain.endswith(tuple("." + d for d in _RESERVED_DOMAINS)):
        return None
    if labels[-1] in _RESERVED_TLDS or labels[-1] in _FILE_SUFFIXES:
        return None
    if labels[0] in ("self", "cls", "this"):
        return None  # `x@self.weight`: matrix product, not an address
    if m.string[m.end() : m.end() + 1] == ":" and m["local"] == "git":
        return None  # `git@host.com:org/repo`: a remote, no one's mailbox
    return Found(m.start(), m.end(), "email", EMAIL)


# --- the detectors -------------------------------------------------------------------------

# Literal-led regexes (fast to search) that flag lines for the detectors naming them.
ANCHORS: dict[str, re.Pattern[str]] = {
    "email": _rx(r"@[A-Za-z0-9\-]+\."),
    "ipv4": _rx(r"\.\d{1,3}\.\d{1,3}\."),
    "ipv6": _rx(r":[0-9A-Fa-f]{0,4}:"),
    "azure_secret": _rx(r"\dQ~[\w~.\-]{20}"),
}

_KEY_WORDS = (
    "pass", "pw", "secret", "key", "token", "auth", "cred", "signature", "salt", "hmac", "jwt",
    "dsn", "bearer",
)  # fmt: skip

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        PRIVATE_KEY,
        _rx(
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:.*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|.*)",
            re.DOTALL,
        ),
    ),
    Detector("putty_private_key", PRIVATE_KEY, _rx(r"PuTTY-User-Key-File-\d:.*", re.DOTALL)),
    Detector(
        "url_credentials",
        PASSWORD,
        _rx(r"://(?P<user>[^\s:/@'\"`<>]*):(?P<value>[^\s/'\"`<>]+)@"),
        triggers=("://",),
        judge=_userinfo("url_credentials"),
        prefilter=_rx(r"://[^\s:/@'\"`<>]*:"),
    ),
    Detector(
        "basic_auth",
        PASSWORD,
        _rx(
            r"(?:(?<=\s)|^)(?:-u|--user|--proxy-user|-a|--auth)(?:\s+|=|[\"']\s*,\s*)"
            r"(?P<q>[\"']?)(?P<user>[^\s:\"']*):(?P<value>[^\s\"']+)(?P=q)"
        ),
        triggers=("-u", "--user", "-a", "--auth"),
        judge=_userinfo("basic_auth"),
        prefilter=_rx(
            r"(?:-u|--user|--proxy-user|-a|--auth)(?:\s+|=|[\"']\s*,\s*)[\"']?[^\s:\"']*:"
        ),
    ),
    _token("slack_webhook", TOKEN, r"hooks\.slack\.com", r"https://hooks\.slack\.com/[^\s\"'`<>]+"),
    _token(
        "aws_access_key_id",
        API_KEY,
        r"A3T|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA",
        r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)"
        r"[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    _token(
        "github_token",
        TOKEN,
        r"gh[pousr]_|github_pat_",
        r"(?:gh[pousr]_[A-Za-z0-9_]{36,255}|github_pat_\w{22,})",
    ),
    _token(
        "gitlab_token",
        TOKEN,
        r"gl[a-z]{2,6}-",
        r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glptt|glimt|gloas|glagent)-[\w\-]{20,}",
    ),
    _token("slack_token", TOKEN, r"xox", r"xox[abposre]-[A-Za-z0-9-]{10,}"),
    _token(
        "stripe_key",
        API_KEY,
        r"(?:sk|rk|pk|whsec)_(?:live|test)_",
        r"(?:sk|rk|pk|whsec)_(?:live|test)_[A-Za-z0-9]{16,}",
    ),
    _token("google_api_key", API_KEY, r"AIza", r"AIza[0-9A-Za-z_\-]{35}"),
    _token(
        "google_oauth",
        TOKEN,
        r"GOCSPX-|ya29\.",
        r"(?:GOCSPX-[\w\-]{20,}|ya29\.[\w\-]{20,})",
    ),
    _token(
        "anthropic_key", API_KEY, r"sk-ant-", r"(?<![\w-])sk-ant-(?:api|admin|sid)\d\d-[\w\-]{40,}"
    ),
    _token(
        "openai_key",
        API_KEY,
        r"sk-",
        r"(?<![\w-])sk-(?:proj-|ant-|svcacct-|admin-)?(?=[\w\-]*\d)[\w\-]{20,}",
    ),
    _token("jwt", TOKEN, r"eyJ", r"eyJ[\w\-]{8,}\.eyJ[\w\-]{8,}\.[\w\-]{8,}"),
    _token(
        "twilio_key",
        API_KEY,
        r"(?:SK|AC)[0-9a-fA-F]{32}",
        r"(?<![A-Za-z0-9])(?:SK|AC)[0-9a-fA-F]{32}(?![A-Za-z0-9])",
    ),
    _token("sendgrid_key", API_KEY, r"SG\.", r"SG\.[\w\-]{16,32}\.[\w\-]{16,64}"),
    _token("npm_token", TOKEN, r"npm_", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    _token("pypi_token", TOKEN, r"pypi-", r"pypi-AgE[\w\-]{50,}"),
    _token("huggingface_token", TOKEN, r"hf_", r"(?<![\w])hf_[A-Za-z0-9]{30,}(?![\w])"),
    _token("mailgun_key", API_KEY, r"key-", r"(?<![\w-])key-[0-9a-f]{32}(?![\w])"),
    _token("shopify_token", TOKEN, r"shp", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    _token("digitalocean_token", TOKEN, r"do[por]_v1_", r"do[por]_v1_[a-f0-9]{64}"),
    _token("databricks_token", TOKEN, r"dapi", r"(?<![\w])dapi[a-f0-9]{32}(?![\w])"),
    _token("square_token", TOKEN, r"sq0", r"sq0(?:atp|csp)-[\w\-]{22,}"),
    _token(
        "discord_token",
        TOKEN,
        r"[MNO][\w-]{23,25}\.",
        r"(?<![\w\-.])[MNO][\w\-]{23,25}\.[\w\-]{6}\.[\w\-]{27,38}(?![\w\-])",
    ),
    # The run after the colon: `123456789:AA...`.
    _token("telegram_bot_token", TOKEN, r"AA", r"(?<!\d)\d{8,10}:AA[\w\-]{33}(?![\w])"),
    Detector(
        "azure_client_secret",
        SECRET,
        _rx(r"(?<![\w~.\-])[\w\-]{3}\dQ~[\w~.\-]{31,34}(?![\w~.\-])"),
        triggers=("re:azure_secret",),
    ),
    Detector(
        "django_secret_key",
        SECRET,
        _rx(r"django-insecure-[^\s\"'`<>]{30,}"),
        triggers=("django-insecure",),
    ),
    Detector(
        "azure_storage_key",
        API_KEY,
        _rx(r"AccountKey=([A-Za-z0-9+/=]{40,})"),
        1,
        is_literal,
        triggers=("accountkey",),
    ),
    Detector(
        "authorization_header",
        TOKEN,
        _rx(
            r"(?i:\b(?P<scheme>bearer|basic|token|bot|apikey|ssws)\s+)"
            r"(?P<value>[A-Za-z0-9._~+/\-]{8,}=*)"
        ),
        triggers=("bearer", "basic", "authorization"),
        judge=_auth_scheme,
        prefilter=_rx(r"\b(?:bearer|basic|token|bot|apikey|ssws)\s+[A-Za-z0-9._~+/\-]{8}", re.I),
    ),
    Detector(
        "basic_auth",
        PASSWORD,
        _rx(
            r"(?:\bauth\s*[=:]\s*[\[(]|\b\w*Auth\(|\.login\(|\.auth\()\s*[^,()\n]*?,\s*"
            rf"(?:passw(?:or)?d\s*=\s*)?(?P<value>{_QUOTED})"
        ),
        triggers=("auth", "login"),
        judge=_quoted_password,
    ),
    Detector(
        "password_assignment",
        PASSWORD,
        _rx(r"(?i:\b(?:user|to)\b[^\n]*?\bidentified\s+by)\s+(?P<value>'[^'\n]*'|\"[^\"\n]*\")"),
        triggers=("identified",),
        judge=_quoted_password,
    ),
    Detector(
        "secret_assignment",
        SECRET,
        _rx(
            rf"<(?P<name>[\w.\-:]*?{_SECRET_WORD}[\w.\-]*)(?:\s[^<>\n]*)?>(?P<value>[^<>\n]+)"
            r"</(?P=name)>",
            re.IGNORECASE,
        ),
        triggers=_KEY_WORDS,
        judge=_xml_value,
    ),
    Detector(
        "secret_assignment",
        SECRET,
        _rx(
            rf"\bkey=\"(?P<name>[^\"\n]*?{_SECRET_WORD}[^\"\n]*)\"\s+value=\"(?P<value>[^\"\n]*)\"",
            re.IGNORECASE,
        ),
        triggers=_KEY_WORDS,
        judge=_xml_value,
    ),
    Detector(
        "secret_assignment",
        SECRET,
        _rx(
            rf"(?<![\w.\-])(?P<name>-{{0,2}}{_NAME}{_PROSE_TAIL})(?P<close>[\"'`\]]{{0,2}})"
            rf"(?P<sep>{_SEP})"
            rf"(?P<value>{_VALUE})",
            re.IGNORECASE,
        ),
        triggers=_KEY_WORDS,
        judge=_keyed,
        seed=_SEED,
        prefilter=_rx(
            rf"{_WHOLE_SECRET_WORD}{_PROSE_TAIL}[\"'`\]]{{0,2}}"
            r"\s*(?:[=:|!+]|,\s*[bBrRuUfF]{0,2}[\"']|is\s)"
        ),
    ),
    Detector(
        "secret_assignment",
        SECRET,
        _rx(
            rf"(?:(?<![\w\-])--?|^\s*(?-i:ENV)\s+)(?P<name>{_NAME})\s+(?P<value>{_VALUE})",
            re.IGNORECASE,
        ),
        triggers=_KEY_WORDS,
        judge=_keyed,
        prefilter=_rx(rf"(?:-|ENV\s)[\w.$\-]*?{_SECRET_WORD}[\w.\-]*\s", re.I),
    ),
    Detector(
        "secret_assignment",
        SECRET,
        _rx(rf"(?<![\w.\-])(?P<name>{_NAME}{_PROSE_TAIL})\s+(?P<value>{_QUOTED})", re.I),
        triggers=_KEY_WORDS,
        judge=_keyed,
        seed=_SEED,
        prefilter=_rx(rf"{_SECRET_WORD}[\w.\-]*{_PROSE_TAIL}\s+[bBrRuUfF]{{0,2}}[\"'`]", re.I),
    ),
    Detector(
        "high_entropy_string",
        SECRET,
        _rx(r"([\"'`])([A-Za-z0-9+/=_\-.]{16,})\1"),
        2,
        high_entropy,
    ),
    Detector(
        "high_entropy_string",
        SECRET,
        _rx(
            r"^\s*(?:export\s+)?(?:-\s+)?[A-Za-z_.][\w.\-]*\s*[=:]\s*([A-Za-z0-9+/=_\-.]{16,})\s*$"
        ),
        1,
        lambda v: high_entropy(v) or base64_text(v),
        config_only=True,
        triggers=("=", ":"),
    ),
    Detector(
        "email",
        EMAIL,
        _rx(
            r"(?<![\w.%+\-\\])(?P<local>(?:[\w.%+\-]|\\u[0-9a-fA-F]{4})+)@(?P<domain>[A-Za-z0-9](?:[A-Za-z0-9\-]*"
            r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24})"
            r"(?![\w\-])"
        ),
        triggers=("re:email",),
        judge=_email,
        prefilter=_rx(r"@[A-Za-z0-9\-]+\.[A-Za-z0-9]"),
    ),
    Detector(
        "ip_address",
        IP_ADDRESS,
        _rx(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"),
        0,
        _routable_ipv4,
        triggers=("re:ipv4",),
    ),
    Detector(
        "ip_address",
        IP_ADDRESS,
        _rx(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
        0,
        _ipv6,
        triggers=("re:ipv6",),
    ),
)
