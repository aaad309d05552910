"""Post-processing that makes a completion safe to insert into an editor as it streams.

Decisions are pure functions of the text generated so far: where to cut (stop
sequence, end of line, end of the current block, a line that repeats the suffix)
and how much of the tail to hold back because a later token could still move the
cut. `Postprocessor` turns them into deltas that are never retracted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CutReason = Literal["stop", "line", "block", "suffix"]


@dataclass(frozen=True)
class PostprocessOptions:
    """What the client asked for, plus the context the cuts need."""

    stop: tuple[str, ...] = ()
    single_line: bool = False
    stop_at_block_end: bool = False
    line_prefix: str = ""  # the prompt's text on the cursor's line, before the cursor
    suffix: str | None = None  # text after the cursor (FIM)
    # Texts that must never reach a client (FIM tokens, EOS) even if spelled by plain tokens.
    forbidden: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cut:
    """Where the completion ends and why."""

    at: int
    reason: CutReason


def indent_of(line: str) -> int:
    """Width of a line's leading whitespace (a tab counts as 4)."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(4))


def _first_suffix_line(suffix: str | None) -> str:
    for line in (suffix or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _stop_cut(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def _line_cut(text: str) -> int | None:
    # End of line only after some content: a completion may start on the next line.
    started = False
    for i, ch in enumerate(text):
        if ch == "\n" and started:
            return i
        started = started or not ch.isspace()
    return None


def _complete_lines(text: str) -> list[tuple[int, str]]:
    """(start offset of the preceding newline, line) for each line begun after a newline and
    followed by another newline, i.e. the lines whose content can no longer change."""
    out: list[tuple[int, str]] = []
    pos = text.find("\n")
    while pos >= 0:
        end = text.find("\n", pos + 1)
        if end < 0:
            break
        out.append((pos, text[pos + 1 : end]))
        pos = end
    return out


def _block_indent(text: str, line_prefix: str) -> int | None:
    """Indentation of the block the completion writes in, once known."""
    first, _, rest = text.partition("\n")
    if first.strip():  # the completion goes on with the cursor's line
        return indent_of(line_prefix + first)
    later = next((line for line in rest.split("\n") if line.strip()), None)
    if later is None:
        return None
    # A completion that opens new lines after `def f():` writes the body: its indentation
    # (deeper than the cursor's line) is the block's.
    outer = indent_of(line_prefix) if line_prefix.strip() else 0
    return max(indent_of(later), outer)


def _block_cut(text: str, line_prefix: str) -> int | None:
    base = _block_indent(text, line_prefix)
    if base is None:
        return None
    lines = _complete_lines(text)
    last_nl = text.rfind("\n")
    if last_nl >= 0 and text[last_nl + 1 :].strip():
        lines.append((last_nl, text[last_nl + 1 :]))  # its indentation is already final
    # The first line that begins below the block's indentation ends the block; a line that
    # continues the cursor's line or sets the block's indentation never does.
    for start, line in lines:
        if line.strip() and indent_of(line) < base:
            return start
    return None


def _suffix_cut(text: str, suffix: str | None, final: bool) -> int | None:
    """Cut before a whole line that repeats the suffix's first line (the model re-writing it)."""
    target = _first_suffix_line(suffix)
    if not target:
        return None
    lines = _complete_lines(text)
    last_nl = text.rfind("\n")
    if final and last_nl >= 0:
        lines.append((last_nl, text[last_nl + 1 :]))
    for start, line in lines:
        if line.strip() == target:
            return start
    return None


def find_cut(text: str, opts: PostprocessOptions, final: bool = False) -> Cut | None:
    """The earliest place the completion must end, if one is already decided."""
    candidates: list[Cut] = []
    stop = _stop_cut(text, opts.stop + opts.forbidden)
    if stop is not None:
        candidates.append(Cut(stop, "stop"))
    if opts.single_line and (line := _line_cut(text)) is not None:
        candidates.append(Cut(line, "line"))
    if opts.stop_at_block_end and (block := _block_cut(text, opts.line_prefix)) is not None:
        candidates.append(Cut(block, "block"))
    if (dup := _suffix_cut(text, opts.suffix, final)) is not None:
        candidates.append(Cut(dup, "suffix"))
    return min(candidates, key=lambda c: c.at) if candidates else None


def _partial_stop_len(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of text that is a proper prefix of a stop sequence."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


def safe_end(text: str, opts: PostprocessOptions) -> int:
    """How much of text (with no cut yet) can be sent without a later token retracting it."""
    end = len(text) - _partial_stop_len(text, opts.stop + opts.forbidden)
    line_cuts = opts.single_line or opts.stop_at_block_end or bool(_first_suffix_line(opts.suffix))
    last_nl = text.rfind("\n", 0, end)
    if line_cuts and last_nl >= 0:
        end = min(end, last_nl)  # the open line may still turn out to end the completion
    if opts.suffix and "\n" not in text:
        end = min(end, len(text) - _suffix_overlap_len(text, opts.suffix))
    if opts.single_line or opts.stop_at_block_end or opts.suffix is not None:
        # Trailing whitespace is dropped at a cut, so it is sent only once text follows it.
        end = len(text[:end].rstrip())
    return max(end, 0)


def _suffix_overlap_len(text: str, suffix: str) -> int:
    """Length of the longest tail of text that is how the suffix's first line begins."""
    head = suffix.split("\n", 1)[0].rstrip()
    return next((k for k in range(len(head), 0, -1) if text.endswith(head[:k])), 0)


def trim_suffix_overlap(text: str, suffix: str | None, min_chars: int = 3) -> str:
    """Drop a tail of a one-line completion that repeats how the suffix begins.

    Short overlaps (`)` after `f(a)`) are kept: they are as often the model closing its own
    bracket as a repeat of the suffix.
    """
    if not suffix or "\n" in text:
        return text
    k = _suffix_overlap_len(text, suffix)
    head = suffix.split("\n", 1)[0]
    return text[: len(text) - k] if len(head[:k].strip()) >= min_chars else text


@dataclass
class Postprocessor:
    """Turns the growing decoded text into deltas an editor can insert as they come."""

    opts: PostprocessOptions
    sent: str = ""
    cut: Cut | None = field(default=None)

    def feed(self, text: str) -> tuple[str, bool]:
        """The new safe text given everything decoded so far, and whether generation must stop."""
        text = text.rstrip("\ufffd")  # half a UTF-8 character: wait for its other bytes
        cut = find_cut(text, self.opts)
        if cut is not None:
            self.cut = cut
            return self._emit(self._finalize(text[: cut.at], cut.reason)), True
        return self._emit(text[: safe_end(text, self.opts)]), False

    def finish(self, text: str) -> str:
        """The rest of the completion once generation has ended (EOS, length, cancel)."""
        cut = find_cut(text, self.opts, final=True)
        if cut is not None:
            self.cut = cut
            return self._emit(self._finalize(text[: cut.at], cut.reason))
        if self.opts.suffix is not None:
            text = trim_suffix_overlap(text, self.opts.suffix)
        return self._emit(text)

    def _finalize(self, text: str, reason: CutReason) -> str:
        # A stop sequence keeps the text before it verbatim (OpenAI's rule); line and block
        # cuts drop the trailing blank lines an editor would otherwise insert.
        return text if reason == "stop" else text.rstrip()

    def _emit(self, upto: str) -> str:
        if not upto.startswith(self.sent):
            return ""  # never retract what a client already has
        delta, self.sent = upto[len(self.sent) :], upto
        return delta
