"""Which lines of a file a secret detector needs to look at, found in one cheap pass per trigger.

Work happens on the UTF-8 bytes: `bytes.lower()` keeps every offset (str.lower() does not, for
a few Unicode letters), line numbers are counts of newline bytes before an offset, and runs of
token characters come from one numpy pass.
"""

from __future__ import annotations

import re

import numpy as np

TOKEN_RUN_MIN = 15

_TOKEN_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
# bytes.translate table: token characters -> 1, everything else -> 0 (C speed, no numpy pass).
_TOKEN_TABLE = bytes(1 if c in _TOKEN_BYTES else 0 for c in range(256))


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


class Suspects:
    """Trigger -> line numbers for one text, computed on first need and remembered."""

    def __init__(
        self,
        text: str,
        prefixes: TokenPrefixes,
        anchors: dict[str, re.Pattern[bytes]],
    ) -> None:
        self.data = text.encode("utf-8", "surrogatepass")
        self._prefixes = prefixes
        self._anchors = anchors
        self._lower: bytes | None = None
        self._newlines: np.ndarray | None = None
        self._tokens: dict[str, set[int]] | None = None
        self._memo: dict[str, set[int]] = {}

    def lines(self, triggers: tuple[str, ...]) -> list[int]:
        """Sorted line numbers flagged by any of the triggers."""
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
        if not offsets:
            return set()
        if self._newlines is None:
            arr = np.frombuffer(self.data, dtype=np.uint8)
            self._newlines = np.flatnonzero(arr == 10)
        rows = np.searchsorted(self._newlines, np.asarray(offsets), side="left")
        return set(rows.tolist())

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
