"""What a name and a value say: does this name hold a secret, is this value one or a template?

Pure decisions shared by the detectors in `secret_patterns`: a name is split into its words
(`AWS_SECRET_ACCESS_KEY`, `dbPassword`, `x-api-key`, `root.pw`) and judged by them, so
`bypass` or `tokenizer` name nothing and `password_file` names a file; a value is a template
only when it really is one (`${VAR}`, `$VAR`, `{{ x }}`, `%(x)s`, `<placeholder>`), so
`$3cr3t!x9` stays a secret.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import re
from collections import Counter
from enum import IntEnum

# --- names -----------------------------------------------------------------------------------


class Strength(IntEnum):
    """How surely a name holds a secret."""

    NONE = 0
    WEAK = 1  # token, key, auth: also sort keys, tokenizer state...; the value must look random
    STRONG = 2  # password, secret, api key: any literal value is a secret


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_STRONG_WORDS = word_set(
    "password passwd pass pwd pw passphrase secret secrets apikey credential credentials creds "
    "privatekey secretkey accesskey authtoken accesstoken apitoken clientsecret"
)
# One word ending with these is strong too: dbpassword, clientsecret, npm's _authToken.
_STRONG_ENDINGS = ("password", "passwd", "passphrase", "secret", "apikey", "authtoken")
_STRONG_PAIRS = frozenset(
    tuple(p.split("+"))
    for p in word_set(
        "api+key access+key secret+key private+key signing+key encryption+key master+key "
        "account+key storage+key shared+key auth+key hmac+key app+key app+secret auth+token "
        "access+token refresh+token api+token bearer+token bot+token session+token id+token "
        "client+secret"
    )
)
_WEAK_WORDS = word_set("token key auth signature salt pat hmac jwt bearer dsn sas")
# A name ending with one of these names something about a secret, not the secret itself.
_NOT_THE_SECRET = word_set(
    "name names file files filename path paths dir url uri urls endpoint host id ids type types "
    "length len size bits field fields label prompt hint min max count policy env var vars "
    "format pattern patterns regex re rx mode method kind version help description desc message "
    "msg error errors title template input column attr attribute prefix suffix index idx list "
    "map dict class cls func fn callback handler cache manager provider factory required "
    "enabled changed expires expiry expiration ttl age timeout char chars rule rules validator "
    "strength location ref source store holder widget view form entry box button function "
    "algorithm alg algo encoding event events order level flag flags option options param "
    "params arg args schema spec mapping lookup getter setter set sets reset prefixes ref "
    "refs reference references role roles placeholder module"
)
# A name starting with one of these is a flag or an action: is_secret, no_password, get_token.
_NOT_A_HOLDER = word_set(
    "is has no use uses require requires enable enabled allow allows show hide check verify "
    "validate get set generate make create read load save write reset change update forgot "
    "ask prompt parse"
)


def name_words(name: str) -> list[str]:
    """`AWS_SECRET_ACCESS_KEY`, `dbPassword`, `x-api-key` -> their lower-case words."""
    return [w.lower() for w in _WORD_SPLIT.split(name) if w]


def strength(words: list[str]) -> Strength:
    """How surely a name made of `words` holds a secret."""
    if not words or words[-1] in _NOT_THE_SECRET or words[0] in _NOT_A_HOLDER:
        return Strength.NONE
    if words == ["pass"]:
        return Strength.WEAK  # alone, mostly Python's statement: `"if a: pass"`, `pass 'x' to`
    if any(w in _STRONG_WORDS or w.endswith(_STRONG_ENDINGS) for w in words):
        return Strength.STRONG
    if any(pair in _STRONG_PAIRS for pair in itertools.pairwise(words)):
        return Strength.STRONG
    return Strength.WEAK if any(w in _WEAK_WORDS for w in words) else Strength.NONE


def qualified(qualifiers: list[str], words: list[str], compound: bool = True) -> Strength:
    """A one-word name's strength with the prose words before it (`aws secret key`, `API
    token`): they strengthen it by a strong word of their own or a known pair, never by
    themselves making a weak word strong. With `compound`, `smtp pass` is a name like
    `smtp_pass`; the caller drops verbs and adverbs (`can pass "x"`, `only pass`), and passes
    `compound=False` where prose says `users pass "dtype="`."""
    level = strength(words)
    if level is Strength.NONE or not qualifiers:
        return level
    if (compound and words == ["pass"]) or any(w in _STRONG_WORDS for w in qualifiers):
        return Strength.STRONG
    return Strength.STRONG if (qualifiers[-1], words[0]) in _STRONG_PAIRS else level


def is_password_name(words: list[str]) -> bool:
    """Whether the name is a password's (the value becomes <PASSWORD>, else <SECRET>)."""
    return any(w.startswith(("pass", "pwd")) or w == "pw" or w.endswith("password") for w in words)


# --- values ----------------------------------------------------------------------------------

# Template and reference syntax. `$VAR` counts only where a shell would end the name, and
# `$VAR` and `$(...)` not right after a letter or digit: `$3cr3t!x9`, `$ecr3t!x9`,
# `geheim$parole` and `t$(Efb3T!` stay literal.
_TEMPLATE = re.compile(
    r"\$\{[^}\n]*\}+|(?<![A-Za-z0-9])\$\([^)\n]*\)|\{\{.*?\}\}|\{%.*?%\}|<%.*?%>|#\{[^}\n]*\}"
    r"|%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdrfixXoeEgG]|%[sdr](?![A-Za-z0-9])"
    r"|\{[^{}\n]*\}|<[A-Za-z_][\w\- .]*>|<\|[^|\n]*\|>"
    r"|%[A-Za-z_]\w*%|(?<![A-Za-z0-9])\$[A-Za-z_]\w*(?=$|[/:@.\s\"'`,;])"
)
# Cut at the first space, a template is only its opening: `${{`, `{{`, `{%`, `<%`.
_TEMPLATE_OPENINGS = ("${", "{{", "{%", "<%", "$(", "#{")
_WHOLE_REFERENCE = re.compile(r"\$(?:\d+|[@*#?!$]|[A-Za-z_]\w*)|%\w+%")
_CODE_START = re.compile(r"[A-Za-z_][\w.]*\s*[(\[]")
_CAMEL_WORD = re.compile(r"[A-Z][a-z]{2,}|(?<![a-z])[a-z]{3,}")
_WORD_PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")
_PLAIN = re.compile(r"[A-Za-z_\s\-./:=<>]*")  # words and separators around template parts
_MASK = re.compile(r"([*xX.•#\-_])\1{2,}")
_PLACEHOLDER_WORDS = re.compile(
    r"(?i)^(?:(?:your|insert|enter|replace)[-_ ].*|.*[-_ ]here|changeme|change[-_]me|placeholder"
    r"|redacted|dummy|example|sample|fake|xxx+|todo|fixme|tbd|secret|password|pass|passwd|pwd"
    r"|test|testing|foo|bar|baz|qux|spam|eggs|\.\.\.)$"
)
_KEYWORDS = word_set(
    "none null nil true false undefined required optional empty default yes no on off "
    "unset str string bytes int bool"
)
_FIELD_NAME = re.compile(r"[a-z_\-]*(?:passw(?:or)?d|passphrase|pwd|secret|token|key)[a-z_\-]*")
_REGEX_LIKE = re.compile(r"\\[dwsbDWS]|\[\^|\(\?|\{\d+(?:,\d*)?\}|[a-z]-z|A-Z|0-9|\.[*+]")
_YAML_NODE = re.compile(r"[*&!][A-Za-z_][\w\-]*")


def echoes_name(value: str, words: list[str]) -> bool:
    """`"credentials_role": "credentialsRole"`, `"secret": "V1SecretProjection"`: a value that
    is a name built from the key's own words, not a secret."""
    if not (camel_words(value) or words_joined(value)):
        return False
    own = set(name_words(value))
    return set(words) <= own or len(set(words) & own) >= 2


def names_a_field(value: str) -> bool:
    """`password`, `api_key`, `secret-token`: a value that names a field, not a secret."""
    return _FIELD_NAME.fullmatch(value.strip().lower()) is not None


def is_template(value: str) -> bool:
    """Whether `value` is template or reference syntax rather than a literal.

    A value holding template parts is one when what is left around them is short or plain
    words (`Bearer ${TOKEN}`, `secret_{}`), not when it is a secret's worth (`x+o$WDbG0!`).
    """
    v = value.strip()
    if _WHOLE_REFERENCE.fullmatch(v):
        return _reference(v)
    if v.startswith(_TEMPLATE_OPENINGS):
        return True
    rest = _TEMPLATE.sub("", v)
    if rest == v:
        return False
    return len(re.sub(r"[^A-Za-z0-9]", "", rest)) < 6 or _PLAIN.fullmatch(rest) is not None


def _reference(value: str) -> bool:
    """`$DB_PASSWORD`, `$password`, `$1`, `%APPDATA%`; not `$bYq0PW0tSoGri5`, a random run."""
    m = _WHOLE_REFERENCE.fullmatch(value)
    if m is None:
        return False
    name = value.strip("$%")
    return not name[:1].isalpha() or bool(
        name.isupper() or name.islower() or camel_words(name) or words_joined(name)
    )


def is_placeholder(value: str) -> bool:
    """Masks and stand-ins: `********`, `xxx`, `your-api-key-here`, `changeme`, `None`."""
    v = value.strip()
    return (
        v.lower() in _KEYWORDS
        or _MASK.fullmatch(v) is not None
        or _PLACEHOLDER_WORDS.match(v) is not None
        or names_a_field(v)
    )


def is_literal(value: str) -> bool:
    """A value that may be a secret: no template, reference, placeholder or empty stand-in."""
    v = value.strip()
    return len(v) >= 3 and not is_template(v) and not is_placeholder(v)


def looks_like_code(value: str) -> bool:
    """`Union[str, None]`, `Depends(scheme)`, `iam.AccessKeyReference(`, `</label>`: code or
    markup in prose, not a value."""
    if value.startswith("<"):
        return True
    # A call or a subscript, in code's own characters: `f2(zk)=&x$^n9` is a key.
    return _CODE_START.match(value) is not None and not re.search(r"[!@#$%^&~?;`]", value)


def camel_words(value: str) -> bool:
    """`V1ServiceAccountTokenProjection`: a type or field name, words run together."""
    if re.search(r"[^A-Za-z0-9_]", value):
        return False
    covered = sum(len(w) for w in _CAMEL_WORD.findall(value))
    return covered >= 0.8 * len(value)


def looks_like_path(value: str) -> bool:
    """`/run/secrets/db`, `./keys/dev.pem`, `~/.ssh/id_rsa`: a file, not a secret."""
    if re.fullmatch(r"[~.]{0,2}(?:/[\w.\-]+)+/?", value) is None:
        return False
    # A base64 key may start with `/` too: its segments are long runs of mixed case and digits.
    return not any(_random_run(seg) for seg in value.split("/"))


def _random_run(part: str) -> bool:
    return (
        len(part) >= 8
        and any(c.isdigit() for c in part)
        and any(c.isupper() for c in part)
        and any(c.islower() for c in part)
    )


def secretish(value: str) -> bool:
    """A key-like value: what a weak name (token, key, auth) must hold to be a secret."""
    v = value.strip()
    if not is_literal(v) or looks_like_path(v) or _REGEX_LIKE.search(v) or "\\" in v:
        return False
    if base64_text(v):
        return True
    if words_joined(v) or camel_words(v):
        return False
    return _random_letters(v) or (
        len(v) >= 12
        and not any(ch.isspace() for ch in v)
        and any(ch.isdigit() for ch in v)
        and any(ch.isalpha() for ch in v)
    )


def prose_secret(value: str) -> bool:
    """A secret written in prose or a string: has a digit or a symbol, is no word or path."""
    v = value.strip()
    if len(v) < 6 or not is_literal(v) or looks_like_path(v) or "://" in v or "\\" in v:
        return False
    if looks_like_code(v):
        return False
    if any(c.isdigit() for c in v) or re.search(r"[^\w.\-]", v) is not None:
        return True
    return base64_text(v) or high_entropy(v) or _random_letters(v)


def _random_letters(value: str) -> bool:
    # A key of letters only (`DjezNzvlzNEhvtWGsTjl...`): long, both cases, no words in it.
    return (
        len(value) >= 24
        and value.isalpha()
        and not value.islower()
        and not value.isupper()
        and not camel_words(value)
        and shannon_entropy(value) > 0.8 * math.log2(min(len(value), 52))
    )


def yaml_node(value: str) -> bool:
    """YAML's own syntax, not a value: an alias `*x`, an anchor `&x`, a tag `!vault`."""
    return _YAML_NODE.fullmatch(value) is not None


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def words_joined(value: str) -> bool:
    """`PYTHONIOENCODING=utf8`, `pkcs7_issuer_and_serial_st`, `token-refresh-2024`: words and
    numbers joined by punctuation, which random keys are not."""
    parts = [p for p in re.split(r"[-_.=/+:]", value) if p]
    return len(parts) >= 2 and all(_wordish(p) for p in parts)


def _wordish(part: str) -> bool:
    """`issuer`, `X509`, `pkcs7`, `PyUnicode`, `SubClass1`, `v2`; not `YXBwOkR`, a random run."""
    word = part.rstrip("0123456789") if len(part.rstrip("0123456789")) + 3 >= len(part) else part
    if len(part) <= 4 or part.isdigit():
        return True
    pieces = [p for p in _WORD_SPLIT.split(word) if p]
    return bool(pieces) and all(_WORD_PIECE.fullmatch(p) for p in pieces)


_HEX = re.compile(r"[0-9a-fA-F]+")


def high_entropy(value: str) -> bool:
    """A random-looking key: hex with mixed digits/letters, or base64-like above ~85% of max."""
    if any(s in value for s in ("//", "..", "__")) or value[0] in "./" or value.isdigit():
        return False
    if "=" in value.rstrip("="):
        return False  # `=` inside is an assignment (`KEY=value`), not base64 padding
    # The cheap tests on length and characters first: most quoted strings in code (names,
    # messages) fail them, and then the word tests need not run.
    hex_digits = _HEX.fullmatch(value) is not None
    if hex_digits:
        shaped = len(value) >= 16 and any(c.isalpha() for c in value)
    else:
        digits, letters = any(c.isdigit() for c in value), any(c.isalpha() for c in value)
        shaped = len(value) >= 20 and digits and letters
    if not shaped or words_joined(value) or camel_words(value):
        return False
    if hex_digits:
        return shannon_entropy(value) >= 3.0
    return shannon_entropy(value) > 0.85 * math.log2(min(len(value), 64))


def base64_text(value: str) -> bool:
    """Base64 of printable text (`cGFzc3dvcmQ=`): a Secret's `data`, a basic-auth pair."""
    if len(value) < 8 or len(value) % 4 or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", value):
        return False
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) < 6 or raw.startswith(b"-----BEGIN CERTIFICATE"):
        return False
    text = raw.decode("ascii", "ignore")
    return len(text) == len(raw) and all(c.isprintable() or c in "\n\r\t" for c in text)
