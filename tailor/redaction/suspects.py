"""Which lines of a file a secret detector needs to look at, found in one cheap pass per trigger.

Work happens on the UTF-8 bytes: `bytes.lower()` keeps every offset (str.lower() does not, for
a few Unicode letters), line numbers are counts of newline bytes before an offset, and runs of
token characters come from one numpy pass.

Searching for each trigger on its own reads the file some 30 times, which is most of the cost
of redaction. When the optional `hyperscan` package is installed, `TriggerScanner` finds
every word, anchor and token trigger in one SIMD pass instead, with the same answer.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

try:
    import hyperscan
except ImportError:  # optional accelerator: without it each trigger is searched on its own
    hyperscan = None  # type: ignore[assignment]

TOKEN_RUN_MIN = 15

_TOKEN_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
# bytes.translate table: token characters -> 1, everything else -> 0 (C speed, no numpy pass).
_TOKEN_TABLE = bytes(1 if c in _TOKEN_BYTES else 0 for c in range(256))
_TOKEN_RUN = re.compile(rb"[A-Za-z0-9_.\-]*")


class TokenPrefixes:
    """Token prefixes by kind, and one regex that rejects most runs in a single match."""

    def __init__(self, prefixes: dict[str, str]) -> None:
        self.by_kind = {kind: re.compile(p.encode()) for kind, p in prefixes.items()}
        self.any = re.compile("|".join(f"(?:{p})" for p in prefixes.values()).encode())

    def kinds(self, data: bytes, start: int, end: int) -> list[str]:
        """Kinds whose prefix starts the run data[start:end]."""
        if self.any.match(data, start, end) is None:
            return []
        return [k for k, rx in self.by_kind.items() if rx.match(data, start, end) is not None]


RowsOf = Callable[[list[int]], list[int]]


class TriggerScanner:
    """Every trigger it knows found in one hyperscan pass; `available()` says if it can run.

    `regexes` (name -> regex) become triggers of their own, flagging the lines where the
    regex may match: a detector given one sees only those lines instead of its triggers'.
    Words match case-insensitively (ASCII, as `bytes.lower()`); a token trigger matches where
    its prefix starts a run of token characters (the pattern demands a non-token byte or the
    start of the text before it) and the run is TOKEN_RUN_MIN long, checked per hit.
    """

    def __init__(
        self,
        words: Iterable[str],
        prefixes: TokenPrefixes,
        anchors: dict[str, re.Pattern[bytes]],
        regexes: dict[str, re.Pattern[str]] | None = None,
    ) -> None:
        exprs: list[bytes] = []
        flags: list[int] = []
        self.names: list[str] = []
        self.token_ids: set[int] = set()
        words = set(words)
        for word in sorted(words):
            # One-byte triggers (`=`, `:`) hit most lines: a callback per hit costs more
            # than `bytes.find`, so they stay with `Suspects._find`.
            if len(word) > 1 and not word.startswith(("token:", "re:")):
                self._add(exprs, flags, re.escape(word).encode(), hyperscan.HS_FLAG_CASELESS)
                self.names.append(word)
        for name, rx in anchors.items():
            self._add(exprs, flags, rx.pattern, 0)
            self.names.append("re:" + name)
        for kind, rx in prefixes.by_kind.items():
            if "token:" + kind not in words:
                continue
            self.token_ids.add(len(exprs))
            pattern = rb"(?:^|[^A-Za-z0-9_.\-])(?:" + rx.pattern + rb")"
            self._add(exprs, flags, pattern, hyperscan.HS_FLAG_SOM_LEFTMOST)
            self.names.append("token:" + kind)
        for name, regex in (regexes or {}).items():
            self._add(exprs, flags, regex.pattern.encode(), _prefilter_flags(regex))
            self.names.append(name)
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        ids = list(range(len(exprs)))
        self._db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=flags)
        self._known = frozenset(self.names)
        self._local = threading.local()  # scratch space is per thread

    def knows(self, triggers: Iterable[str]) -> bool:
        """Whether one scan flags lines for all of `triggers`."""
        return self._known.issuperset(triggers)

    @staticmethod
    def available() -> bool:
        """Whether the hyperscan package is installed."""
        return hyperscan is not None

    @staticmethod
    def _add(exprs: list[bytes], flags: list[int], pattern: bytes, flag: int) -> None:
        exprs.append(pattern)
        flags.append(flag)

    def scan(self, data: bytes, rows_of: RowsOf) -> dict[str, set[int]]:
        """Trigger -> flagged line numbers, for every trigger this scanner knows."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        ids: list[int] = []
        offsets: list[int] = []
        tokens = self.token_ids

        def on_match(i: int, start: int, end: int, _flags: int, _ctx: Any) -> None:
            if i in tokens:
                # The match starts at the byte before the run, or at the run (text start).
                start += 0 if _TOKEN_TABLE[data[start]] else 1
                if _run_length(data, start) < TOKEN_RUN_MIN:
                    return
                end = start + 1
            ids.append(i)
            offsets.append(end - 1)

        self._db.scan(data, match_event_handler=on_match, scratch=scratch)
        found: list[set[int]] = [set() for _ in self.names]
        for i, row in zip(ids, rows_of(offsets), strict=True):
            found[i].add(row)
        return dict(zip(self.names, found, strict=True))


def _prefilter_flags(regex: re.Pattern[str]) -> int:
    # A prefilter matches wherever the regex does (and maybe more): it may flag a line too
    # many, never one too few. MULTILINE: `^` and `$` are a line's ends, as when a detector
    # runs on one line.
    flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_MULTILINE
    if regex.flags & re.IGNORECASE:
        flags |= hyperscan.HS_FLAG_CASELESS
    return flags


def _run_length(data: bytes, start: int) -> int:
    m = _TOKEN_RUN.match(data, start)
    return m.end() - start if m is not None else 0


class Suspects:
    """Trigger -> line numbers for one text, computed on first need and remembered."""

    def __init__(
        self,
        text: str,
        prefixes: TokenPrefixes,
        anchors: dict[str, re.Pattern[bytes]],
        scanner: TriggerScanner | None = None,
    ) -> None:
        self.data = text.encode("utf-8", "surrogatepass")
        self._prefixes = prefixes
        self._anchors = anchors
        self._scanner = scanner
        self._lower: bytes | None = None
        self._newlines: np.ndarray | None = None
        self._tokens: dict[str, set[int]] | None = None
        self._memo: dict[str, set[int]] = {}

    def lines(self, triggers: tuple[str, ...]) -> list[int]:
        """Sorted line numbers flagged by any of the triggers."""
        if self._scanner is not None:
            self._memo.update(self._scanner.scan(self.data, self._row_numbers))
            self._scanner = None
        if len(triggers) == 1 and triggers[0] in self._memo:
            one = self._memo[triggers[0]]
            return sorted(one) if one else []
        found: set[int] = set()
        for trigger in triggers:
            if trigger not in self._memo:
                self._memo[trigger] = self._find(trigger)
            found |= self._memo[trigger]
        return sorted(found)

    def _find(self, trigger: str) -> set[int]:
        if trigger.startswith("token:"):
            return self._token_lines().get(trigger[6:], set())
        if trigger.startswith("re:"):
            hits = [m.start() for m in self._anchors[trigger[3:]].finditer(self.data)]
            return self._rows(hits)
        if self._lower is None:
            self._lower = self.data.lower()
        word, hay, hits = trigger.encode(), self._lower, []
        pos = hay.find(word)
        while pos != -1:
            hits.append(pos)
            # One hit flags its line: go on from the next line, not the next byte.
            end = hay.find(b"\n", pos + len(word))
            pos = hay.find(word, end + 1) if end != -1 else -1
        return self._rows(hits)

    def _rows(self, offsets: list[int]) -> set[int]:
        return set(self._row_numbers(offsets))

    def _row_numbers(self, offsets: list[int]) -> list[int]:
        """The line number of each offset."""
        if not offsets:
            return []
        if self._newlines is None:
            arr = np.frombuffer(self.data, dtype=np.uint8)
            self._newlines = np.flatnonzero(arr == 10)
        rows: list[int] = np.searchsorted(self._newlines, offsets, side="left").tolist()
        return rows

    def _token_lines(self) -> dict[str, set[int]]:
        if self._tokens is not None:
            return self._tokens
        marks = np.frombuffer(b"\0" + self.data.translate(_TOKEN_TABLE) + b"\0", dtype=np.int8)
        edges = np.diff(marks)
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        long = (ends - starts) >= TOKEN_RUN_MIN
        data, any_prefix = self.data, self._prefixes.any.match
        runs = zip(starts[long].tolist(), ends[long].tolist(), strict=True)
        offsets: dict[str, list[int]] = {}
        for a, b in [(a, b) for a, b in runs if any_prefix(data, a, b) is not None]:
            for kind in self._prefixes.kinds(data, a, b):
                offsets.setdefault(kind, []).append(a)
        self._tokens = {kind: self._rows(hits) for kind, hits in offsets.items()}
        return self._tokens
