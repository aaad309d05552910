"""Secret and PII redaction: Tailor's detectors, then detect-secrets' plugins on suspect lines.

detect-secrets' regexes are too slow to run over whole files (seconds per MB), so each plugin,
like each of Tailor's detectors, sees only the lines its triggers flag (`suspects.py`). Values
are replaced by stable placeholders (`<API_KEY>`, `<PASSWORD>`, ...) and counted by kind.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tailor.redaction.detectors import (
    ANCHORS,
    API_KEY,
    CONFIG_LANGUAGES,
    CONFIG_SUFFIXES,
    DETECTORS,
    MARKUP_LANGUAGES,
    MARKUP_SUFFIXES,
    PASSWORD,
    PRIVATE_KEY,
    TOKEN,
    Detector,
    Where,
)
from tailor.redaction.suspects import Suspects, TokenPrefixes, TriggerScanner
from tailor.redaction.values import is_literal, names_a_field


@dataclass
class Redaction:
    """Redacted text, what was found by kind, and how many characters were secret."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)
    secret_chars: int = 0


# detect-secrets plugin class -> (triggers, token prefix or None, placeholder); triggers as in
# `secret_patterns`. Plugins not listed are covered by Tailor's own detectors, which validate
# more (IP addresses, Telegram, entropy strings).
_PLUGINS: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "AWSKeyDetector": (("token:ds_aws", "aws"), "A3T|AKIA|ASIA|ABIA|ACCA", API_KEY),
    "ArtifactoryDetector": (("token:ds_artifactory",), r"AKC|AP[\dA-F]", API_KEY),
    "AzureStorageKeyDetector": (("accountkey",), None, API_KEY),
    "BasicAuthDetector": (("://",), None, PASSWORD),
    "CloudantDetector": (("cloudant",), None, PASSWORD),
    "DiscordBotTokenDetector": (("token:ds_discord",), r"[MNO][\w-]{23,25}\.", TOKEN),
    "GitHubTokenDetector": (("token:ds_github",), r"gh[pousr]_", TOKEN),
    "GitLabTokenDetector": (("token:ds_gitlab",), r"gl[a-z]{2,6}-|GR1348941", TOKEN),
    "IbmCloudIamDetector": (("ibm",), None, API_KEY),
    "IbmCosHmacDetector": (("secret",), None, API_KEY),
    "JwtTokenDetector": (("token:ds_jwt",), r"eyJ", TOKEN),
    "KeywordDetector": (("key", "pass", "pwd", "secret", "contrase"), None, PASSWORD),
    "MailchimpDetector": (("-us",), None, API_KEY),
    "NpmDetector": (("authtoken",), None, TOKEN),
    "OpenAIDetector": (("token:ds_openai",), r"sk-", API_KEY),
    "PrivateKeyDetector": (("private key", "putty"), None, PRIVATE_KEY),
    "PypiTokenDetector": (("token:ds_pypi",), r"pypi-", TOKEN),
    "SendGridDetector": (("token:ds_sendgrid",), r"SG\.", API_KEY),
    "SlackDetector": (("token:ds_slack",), r"xox|hooks\.slack", TOKEN),
    "SoftlayerDetector": (("softlayer", "sl_", "sl-"), None, API_KEY),
    "SquareOAuthDetector": (("token:ds_square",), r"sq0csp", TOKEN),
    "StripeDetector": (("token:ds_stripe",), r"[rs]k_live_", API_KEY),
    "TwilioKeyDetector": (("token:ds_twilio",), r"(?:AC|SK)[a-z0-9]{32}", API_KEY),
}


# A flagged line must also match this (case-insensitively) before the plugin sees it: the
# keyword plugin's triggers (`key`, `pass`) flag far more lines than its keywords name.
_GATES: dict[str, re.Pattern[str]] = {
    "KeywordDetector": re.compile(
        r"(?:api|auth|service|account|db|database|priv|private|client)_?key"
        r"|(?:db|database|key)_?pass|passw|pwd|secret|contrase",
        re.IGNORECASE,
    ),
}


@dataclass(frozen=True)
class _Plugin:
    kind: str
    placeholder: str
    triggers: tuple[str, ...]
    plugin: Any
    gate: re.Pattern[str] | None


@lru_cache(maxsize=1)
def _plugins() -> tuple[_Plugin, ...]:
    """The detect-secrets plugins Tailor runs, with their triggers."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    found: list[_Plugin] = []
    mapping: dict[Any, Any] = get_mapping_from_secret_type_to_class()
    for secret_type, cls in mapping.items():
        if cls.__name__ not in _PLUGINS:
            continue
        triggers, _, placeholder = _PLUGINS[cls.__name__]
        kind = "ds_" + re.sub(r"[^a-z0-9]+", "_", secret_type.lower()).strip("_")
        found.append(_Plugin(kind, placeholder, triggers, cls(), _GATES.get(cls.__name__)))
    return tuple(found)


@lru_cache(maxsize=1)
def _token_prefixes() -> TokenPrefixes:
    prefixes = {d.kind: d.prefix for d in DETECTORS if d.prefix is not None}
    for triggers, prefix, _ in _PLUGINS.values():
        if prefix is not None:
            prefixes[triggers[0].removeprefix("token:")] = prefix
    return TokenPrefixes(prefixes)


@lru_cache(maxsize=1)
def _byte_anchors() -> dict[str, re.Pattern[bytes]]:
    return {name: re.compile(rx.pattern.encode()) for name, rx in ANCHORS.items()}


@lru_cache(maxsize=2)
def _scanner(config: bool) -> TriggerScanner | None:
    """One pass for every trigger of the active detectors and plugins (hyperscan installed)."""
    if not TriggerScanner.available():
        return None
    # Tailor's detectors see the lines their own regex may match; a plugin with a gate the
    # lines its gate may match (a gate match holds one of the plugin's triggers); the other
    # plugins, their triggers' lines.
    _, triggered, whole = _detectors(config)
    regexes = {_rx_trigger(d): d.prefilter or d.regex for d in (*triggered, *whole)}
    regexes.update({_gate_trigger(p): p.gate for p in _plugins() if p.gate is not None})
    words = [t for p in _plugins() if p.gate is None for t in p.triggers]
    return TriggerScanner(words, _token_prefixes(), {}, regexes)


@lru_cache(maxsize=2)
def _line_plan(config: bool) -> tuple[tuple[Detector, tuple[str, ...]], ...]:
    """With a scanner: every single-line detector, in order, with its scanner trigger."""
    _, triggered, whole = _detectors(config)
    return tuple((d, (_rx_trigger(d),)) for d in (*triggered, *whole))


@lru_cache(maxsize=2)
def _trigger_plan(config: bool) -> tuple[tuple[Detector, tuple[str, ...]], ...]:
    """Without one: the triggered detectors with their triggers (whole-text ones run apart)."""
    _, triggered, _ = _detectors(config)
    return tuple((d, d.triggers) for d in triggered)


@lru_cache(maxsize=2)
def _scanned_triggers(config: bool) -> tuple[str, ...]:
    """What a scanner must know to serve a file of this kind."""
    plan = [t for _, (t,) in _line_plan(config)]
    return (*plan, *(_gate_trigger(p) for p in _plugins() if p.gate is not None))


def _gate_trigger(plugin: _Plugin) -> str:
    return "gate:" + plugin.kind


# The scanner's trigger for the lines where a detector's regex may match, by detector.
_RX_TRIGGERS = {id(d): f"rx:{i}" for i, d in enumerate(DETECTORS)}


def _rx_trigger(detector: Detector) -> str:
    return _RX_TRIGGERS[id(detector)]


def warm_up() -> None:
    """Build every detector, plugin and scanner now rather than on the first file."""
    for config in (False, True):
        redact("warm = 'up'", path=".env" if config else "warm.py")


def _substitute(detector: Detector, text: str, red: Redaction, where: Where, row: int = 0) -> str:
    """`text` with every value `detector` finds replaced by its placeholder.

    A judged match that is rejected does not hide its value: the search goes on from the value,
    so `DSN = "host=db password=..."` still finds the password inside the string.
    """
    regex, judge = detector.regex, detector.judge
    resume_at_value = judge is not None and "value" in regex.groupindex
    parts: list[str] = []
    pos = last = 0
    while (m := detector.search(text, pos)) is not None:
        found = _decide(detector, m, where, row)
        if found is None:
            pos = m.start("value") if resume_at_value and m.start("value") > m.start() else m.end()
            pos = max(pos, m.start() + 1)
            continue
        kind, placeholder, start, end = found
        red.counts[kind] += 1
        red.secret_chars += end - start
        parts += (text[last:start], where.render(placeholder, text, start))
        last = end
        pos = max(end, m.end(), m.start() + 1)
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _decide(
    detector: Detector, m: re.Match[str], where: Where, row: int
) -> tuple[str, str, int, int] | None:
    """(kind, placeholder, start, end) of the value `m` found, or None for a look-alike."""
    if detector.judge is not None:
        found = detector.judge(m, where, row)
        if found is None:
            return None
        return found.kind, found.placeholder, found.start, found.end
    value = m.group(detector.group)
    if value is None or (detector.accept is not None and not detector.accept(value)):
        return None
    return detector.kind, detector.placeholder, *m.span(detector.group)


def _is_noise(value: str, line: str) -> bool:
    from detect_secrets.filters import heuristic

    return bool(
        len(value) < 4
        or value.startswith("<")
        or not is_literal(value)
        or names_a_field(value)
        or heuristic.is_sequential_string(value)
        or heuristic.is_potential_uuid(value)
        or heuristic.is_templated_secret(value)
        or heuristic.is_prefixed_with_dollar_sign(value)
        or heuristic.is_not_alphanumeric_string(value)
        or heuristic.is_indirect_reference(line)
    )


def _run_plugin(p: _Plugin, line: str, path: str, row: int, red: Redaction) -> str:
    if p.gate is not None and (("'" not in line and '"' not in line) or not p.gate.search(line)):
        return line
    for s in p.plugin.analyze_line(filename=path or "file", line=line, line_number=row + 1):
        value = s.secret_value
        if not value or value not in line or _is_noise(value, line):
            continue
        # Whole occurrences only: a value `pass` must not eat the start of `password`.
        line, n = re.subn(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])", p.placeholder, line)
        red.counts[p.kind] += n
        red.secret_chars += n * len(value)
    return line


@lru_cache(maxsize=2)
def _detectors(config: bool) -> tuple[tuple[Detector, ...], ...]:
    """(multi-line, line-triggered, whole-text single-line) detectors, each in listed order."""
    active = [d for d in DETECTORS if config or not d.config_only]
    multi = tuple(d for d in active if d.regex.flags & re.DOTALL)
    rest = [d for d in active if not d.regex.flags & re.DOTALL]
    return multi, tuple(d for d in rest if d.triggers), tuple(d for d in rest if not d.triggers)


def _on_lines(red: Redaction, rows_fns: list[tuple[list[int], Callable[[str, int], str]]]) -> None:
    """Apply each `fn(line, row)` to its rows, splitting and joining the text once."""
    if not any(rows for rows, _ in rows_fns):
        return
    lines = red.text.split("\n")
    for rows, fn in rows_fns:
        for row in rows:
            lines[row] = fn(lines[row], row)
    red.text = "\n".join(lines)


def redact(text: str, *, path: str = "", language: str = "") -> Redaction:
    """Replace secrets and PII in `text` with placeholders; count them by kind."""
    return redact_with(
        text, path=path, language=language, scanner=_scanner(_is_config(path, language))
    )


def _is_config(path: str, language: str) -> bool:
    """Whether bare `KEY=value` lines hold literal values (config files, `.env` files)."""
    name = path.rsplit("/", 1)[-1]
    return (
        language in CONFIG_LANGUAGES
        or name.startswith(".env")
        or name.lower().endswith(CONFIG_SUFFIXES)
    )


def _is_markup(path: str, language: str) -> bool:
    """Whether a raw `<` breaks the file (XML, HTML): placeholders are written escaped there."""
    return language in MARKUP_LANGUAGES or path.lower().endswith(MARKUP_SUFFIXES)


def redact_with(
    text: str, *, path: str, language: str, scanner: TriggerScanner | None
) -> Redaction:
    """`redact`, finding suspect lines with `scanner`, or trigger by trigger when None.

    A scanner built for other detectors (config or not) is not used: it lacks triggers.
    """
    red = Redaction(text)
    config = _is_config(path, language)
    multi_line, _, whole = _detectors(config)
    if scanner is not None and not scanner.knows(_scanned_triggers(config)):
        scanner = None
    where = Where(red.text, language, config, markup=_is_markup(path, language))
    # Key blocks span lines: replace them first, so line numbers found afterwards stay right
    # (every later replacement stays within its line: placeholders hold no newline).
    for detector in multi_line:
        red.text = _substitute(detector, red.text, red, where)
    where.text = red.text
    suspects = Suspects(red.text, _token_prefixes(), _byte_anchors(), scanner)
    # Specific shapes first, so a value is counted under its most precise kind; the generic
    # whole-text ones (quoted high-entropy strings) after them. With a scanner, each detector
    # sees only the lines its regex may match, the whole-text ones included.
    work: list[tuple[list[int], Callable[[str, int], str]]] = []
    for detector, trigger in _line_plan(config) if scanner is not None else _trigger_plan(config):
        rows = suspects.lines(trigger)
        if rows:

            def by_detector(line: str, row: int, d: Detector = detector) -> str:
                return _substitute(d, line, red, where, row)

            work.append((rows, by_detector))
    if scanner is None:
        _on_lines(red, work)
        work = []
        for detector in whole:
            red.text = _substitute(detector, red.text, red, where)
    for plugin in _plugins():

        def by_plugin(line: str, row: int, p: _Plugin = plugin) -> str:
            return _run_plugin(p, line, path, row, red)

        gated = scanner is not None and plugin.gate is not None
        rows = suspects.lines((_gate_trigger(plugin),) if gated else plugin.triggers)
        work.append((rows, by_plugin))
    _on_lines(red, work)
    return red
