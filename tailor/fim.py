"""The FIM token styles Tailor knows, one table for training and serving.

Training lays out examples with these tokens and serving builds prompts with them, so a
model family added here is understood the same way by both (no torch import: the API
and the serving front end use it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class FimNames(Protocol):
    """Anything naming the three FIM tokens by text (a style, or a spec's `fim_tokens`)."""

    @property
    def prefix(self) -> str: ...
    @property
    def suffix(self) -> str: ...
    @property
    def middle(self) -> str: ...


@dataclass(frozen=True)
class FimStyle:
    """The texts of a model family's FIM tokens."""

    name: str
    prefix: str
    suffix: str
    middle: str
    extra: tuple[str, ...] = ()  # other specials that must never reach a client


STARCODER = FimStyle("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", ("<fim_pad>",))
CODELLAMA = FimStyle("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", ("▁<EOT>",))
KNOWN_STYLES: tuple[FimStyle, ...] = (STARCODER, CODELLAMA)


class FimError(ValueError):
    """The tokenizer lacks the FIM tokens asked for, or a sequence is not a FIM example."""


@dataclass(frozen=True)
class FimTokens:
    """A FIM style resolved against one vocabulary."""

    style: FimNames
    prefix_id: int
    suffix_id: int
    middle_id: int

    @property
    def texts(self) -> tuple[str, ...]:
        """Every FIM token text (to strip from output and to stop on)."""
        s = self.style
        return (s.prefix, s.suffix, s.middle, *getattr(s, "extra", ()))


def _candidates(names: FimNames | None) -> list[FimNames]:
    return [names] if names is not None else list(KNOWN_STYLES)


def detect_fim(vocab: dict[str, int], names: FimNames | None = None) -> FimTokens | None:
    """The named style (or the first known one) the vocabulary has; None if it has none.

    Asking for a style the vocabulary lacks is an error (FimError), not a quiet None.
    """
    for style in _candidates(names):
        if all(t in vocab for t in (style.prefix, style.suffix, style.middle)):
            return FimTokens(style, vocab[style.prefix], vocab[style.suffix], vocab[style.middle])
    if names is not None:
        raise FimError(f"the tokenizer has no {names.prefix}/{names.suffix}/{names.middle} tokens")
    return None


def require_fim(vocab: dict[str, int], names: FimNames | None = None) -> FimTokens:
    """The named style (or the first known one) the vocabulary has; FimError if none."""
    found = detect_fim(vocab, names)
    if found is None:
        wanted = ", ".join(f"{s.prefix}/{s.suffix}/{s.middle}" for s in KNOWN_STYLES)
        raise FimError(f"the tokenizer has no FIM tokens ({wanted})")
    return found
