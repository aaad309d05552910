"""The one-pass trigger scanner flags the lines the per-trigger search flags; same redaction."""

from __future__ import annotations

import inspect

from bench.secret_corpus import KINDS, planted
from tailor.redaction import detectors, redact
from tailor.redaction.detectors import DETECTORS
from tailor.redaction.redact import (
    _PLUGINS,
    _byte_anchors,
    _is_config,
    _scanner,
    _token_prefixes,
    redact_with,
)
from tailor.redaction.suspects import Suspects, TriggerScanner
from tailor.stages.harvest import dedup, minhash, walk
from tests.harvest.planted import SECRETS, secrets_module

EDGES = "\n".join(
    [
        "AKIAZ3MXQ7RTBW2LKPQN at the start of a line",
        "xAKIAZ3MXQ7RTBW2LKPQN inside a longer run is no token start",
        "AKIA short, xoxb-1 too",  # prefixes on runs under the minimum length
        "risk-sk-proj-Q8mZ2kLp9Xv4Rt7Wy1 not, sk-proj-Q8mZ2kLp9Xv4Rt7Wy1 PASSWORD = 'x' ApiKey",
        "mail: jane.doe@acme-payments.com, hosts 10.1.2.3 and fe80::1:2",
        "no newline at the end: ghp_R4nd0mT0k3nV4lu3F0rT3st1ngAbCdEf1234",
    ]
)


def _texts() -> list[str]:
    modules = (redact, detectors, dedup, minhash, walk)
    return [secrets_module(), EDGES, *SECRETS.values(), *map(inspect.getsource, modules)]


def _full_scanner() -> TriggerScanner:
    """A scanner for every trigger of every detector and plugin."""
    assert TriggerScanner.available(), "hyperscan is a dependency of the harvest"
    words = [t for d in DETECTORS for t in d.triggers]
    words += [t for triggers, _, _ in _PLUGINS.values() for t in triggers]
    return TriggerScanner(words, _token_prefixes(), _byte_anchors())


def test_scanner_flags_the_same_lines_as_searching_each_trigger() -> None:
    scanner = _full_scanner()
    triggers = set(scanner.names) | {t for d in DETECTORS for t in d.triggers}
    for text in _texts():
        fast = Suspects(text, _token_prefixes(), _byte_anchors(), scanner)
        slow = Suspects(text, _token_prefixes(), _byte_anchors())
        for trigger in sorted(triggers):
            assert fast.lines((trigger,)) == slow.lines((trigger,)), (trigger, text[:60])


def test_scanner_finds_tokens_only_where_a_long_run_starts() -> None:
    found = Suspects(EDGES, _token_prefixes(), _byte_anchors(), _full_scanner())
    assert found.lines(("token:aws_access_key_id",)) == [0]
    assert found.lines(("token:openai_key",)) == [3]
    assert found.lines(("token:github_token",)) == [5]
    assert found.lines(("password",)) == [3]  # a word the scanner lacks: searched on its own
    assert found.lines(("pass", "key")) == [3]


def test_redaction_is_the_same_with_and_without_the_scanner() -> None:
    for text in _texts():
        for path, language in (("app/settings.py", "Python"), ("deploy/.env", "Shell")):
            scanner = _scanner(language == "Shell")
            fast = redact_with(text, path=path, language=language, scanner=scanner)
            slow = redact_with(text, path=path, language=language, scanner=None)
            assert (fast.text, fast.counts) == (slow.text, slow.counts), (path, text[:60])


def test_a_scanner_for_other_files_is_not_used_for_a_config_file() -> None:
    text = "API_SECRET=Zq8Lm2Np9Rs4Tv6Wy8Zb1Cd3Fg5Hj7K\n"  # bare value: config detectors only
    red = redact_with(text, path=".env", language="", scanner=_scanner(False))
    assert "Zq8Lm2Np9Rs4Tv6Wy8Zb1Cd3Fg5Hj7K" not in red.text


def test_scanner_prefilters_flag_every_line_their_detectors_redact() -> None:
    # A detector's prefilter is looser than its regex and ends early; were it not a superset,
    # the scanner would skip a line the per-trigger search finds.
    for p in planted(seed=2, samples=1, kinds=[k.name for k in KINDS[::3]]):
        scanner = _scanner(_is_config(p.path, p.language))
        fast = redact_with(p.text, path=p.path, language=p.language, scanner=scanner)
        slow = redact_with(p.text, path=p.path, language=p.language, scanner=None)
        assert (fast.text, fast.counts) == (slow.text, slow.counts), (p.kind, p.context)
