"""Path globs matched without regular expressions: a team's include/exclude patterns are
user input, and a regex built from them could backtrack for minutes on one path.

`*` matches within a segment, `**` across segments, `**/` zero or more whole directories,
`?` one character, `[...]` / `[!...]` one character of a set. A pattern without `/` matches a
file name anywhere (`*.py`); a trailing `/` means everything below (`docs/` == `docs/**`).
Matching simulates the pattern's automaton one character at a time, keeping a set of
positions, so its cost is at most (path length x pattern length), whatever the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# Token kinds.
_LIT, _ONE, _SEG, _ANY, _DIRS, _SET = range(6)


@dataclass(frozen=True)
class _Token:
    kind: int
    char: str = ""
    ranges: tuple[tuple[str, str], ...] = ()
    negated: bool = False

    def takes(self, c: str) -> bool:
        """Whether this token can consume `c` (for the kinds that consume one character)."""
        if self.kind == _LIT:
            return c == self.char
        if self.kind in (_ONE, _SEG):
            return c != "/"
        if self.kind == _SET:
            inside = any(lo <= c <= hi for lo, hi in self.ranges)
            return c != "/" and inside != self.negated
        return True  # _ANY, and a _DIRS body


def _set_token(body: str) -> _Token:
    negated = body.startswith("!")
    body = body[1:] if negated else body
    ranges, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            ranges.append((body[i], body[i + 2]))
            i += 3
        else:
            ranges.append((body[i], body[i]))
            i += 1
    return _Token(_SET, ranges=tuple(ranges), negated=negated)


def _tokens(pattern: str) -> tuple[_Token, ...]:
    pat = pattern.strip()
    if pat.endswith("/"):
        pat += "**"
    if "/" not in pat:
        pat = "**/" + pat
    pat = pat.lstrip("/")
    out, i = [], 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out.append(_Token(_DIRS))
            i += 3
        elif pat.startswith("**", i):
            out.append(_Token(_ANY))
            i += 2
        elif pat[i] == "*":
            out.append(_Token(_SEG))
            i += 1
        elif pat[i] == "?":
            out.append(_Token(_ONE))
            i += 1
        elif pat[i] == "[" and "]" in pat[i + 2 :]:
            j = pat.index("]", i + 2)  # `[]...]`: a leading `]` is a member, as in fnmatch
            out.append(_set_token(pat[i + 1 : j]))
            i = j + 1
        else:
            out.append(_Token(_LIT, pat[i]))
            i += 1
    return tuple(out)


# A position is (token index, inside): `inside` marks the body of a `**/` group, which has
# consumed characters and must end with a `/`.
_Pos = tuple[int, bool]


class Glob:
    """One compiled path glob."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.tokens = _tokens(pattern)

    def _closure(self, positions: set[_Pos]) -> set[_Pos]:
        """Add the positions reachable without consuming a character."""
        todo, seen = list(positions), set(positions)
        while todo:
            i, inside = todo.pop()
            skippable = i < len(self.tokens) and self.tokens[i].kind in (_SEG, _ANY, _DIRS)
            # Zero characters (an empty `**/` group too, but not one whose body has begun).
            if skippable and not inside and (i + 1, False) not in seen:
                seen.add((i + 1, False))
                todo.append((i + 1, False))
        return seen

    def _step(self, positions: set[_Pos], c: str) -> set[_Pos]:
        nxt: set[_Pos] = set()
        for i, _inside in positions:
            if i == len(self.tokens):
                continue
            token = self.tokens[i]
            if token.kind == _DIRS:
                nxt.add((i, True))  # the group's body goes on
                if c == "/":
                    nxt.add((i + 1, False))  # ... or ends with this `/`
            elif token.kind in (_SEG, _ANY):
                if token.takes(c):
                    nxt.add((i, False))
            elif token.takes(c):
                nxt.add((i + 1, False))
        return self._closure(nxt)

    def matches(self, path: str) -> bool:
        """Whether the whole of `path` matches."""
        positions = self._closure({(0, False)})
        for c in path:
            positions = self._step(positions, c)
            if not positions:
                return False
        return (len(self.tokens), False) in positions


@lru_cache(maxsize=512)
def compile_glob(pattern: str) -> Glob:
    """The compiled glob for `pattern` (cached: one spec's patterns meet every path)."""
    return Glob(pattern)
