"""Include/exclude globs: a team's patterns select paths and cannot stall a worker."""

from __future__ import annotations

import re

import pytest

from tailor.stages.harvest.globs import compile_glob


@pytest.mark.parametrize(
    ("pattern", "path", "selected"),
    [
        ("*.py", "src/app/main.py", True),
        ("*.py", "src/app/main.pyc", False),
        ("docs/", "docs/guide/intro.md", True),
        ("docs/", "src/docs.md", False),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/a/b/test_a.py", True),
        ("src/**/test_*.py", "lib/src/test_a.py", False),
        ("**/vendor/**", "a/vendor/lib.js", True),
        ("src/*.py", "src/a/b.py", False),  # `*` stays within a segment
        ("a?c.go", "x/abc.go", True),
        ("a?c.go", "x/a/c.go", False),  # so does `?`
        ("[ab]*.txt", "notes/b1.txt", True),
        ("[!ab]*.txt", "notes/b1.txt", False),
        ("[a-c]x", "bx", True),
        ("[a-c]x", "dx", False),
    ],
)
def test_globs_select_paths_as_documented(pattern: str, path: str, selected: bool) -> None:
    assert compile_glob(pattern).matches(path) is selected


def test_a_backtracking_pattern_is_no_regex_and_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a team's glob reached the regex engine")

    monkeypatch.setattr(re, "compile", refuse)
    monkeypatch.setattr(re, "_compile", refuse)
    evil = "*a" * 40 + "*b"  # as a regex, ([^/]*a){40}[^/]*b backtracks for ages on a's
    assert compile_glob(evil).matches("a" * 2000) is False
    assert compile_glob(evil).matches("a" * 40 + "b") is True
