"""Fill-in-the-middle prompts built with the model's own FIM tokens (for every backend).

The prompt is built as token ids exactly as training lays out a PSM example:
`<pre> prefix <suf> suffix <mid>`, each piece encoded on its own, so a completion
request sees the same token boundaries the model was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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
KNOWN_STYLES = (STARCODER, CODELLAMA)


class FimError(ValueError):
    """The tokenizer has none of the FIM token styles Tailor knows."""


@dataclass(frozen=True)
class FimTokens:
    """A FIM style resolved against one vocabulary."""

    style: FimStyle
    prefix_id: int
    suffix_id: int
    middle_id: int

    @property
    def texts(self) -> tuple[str, ...]:
        """Every FIM token text (to strip from output and to stop on)."""
        s = self.style
        return (s.prefix, s.suffix, s.middle, *s.extra)


def detect_fim(vocab: dict[str, int], style: FimStyle | None = None) -> FimTokens | None:
    """The given style (or the first known one) the vocabulary has; None if it has none."""
    for candidate in [style] if style is not None else KNOWN_STYLES:
        if all(t in vocab for t in (candidate.prefix, candidate.suffix, candidate.middle)):
            ids = (vocab[candidate.prefix], vocab[candidate.suffix], vocab[candidate.middle])
            return FimTokens(candidate, *ids)
    if style is not None:
        raise FimError(f"the tokenizer has no {style.prefix}/{style.suffix}/{style.middle} tokens")
    return None


def fim_prompt_ids(
    prefix: str,
    suffix: str,
    tokens: FimTokens,
    encode: Callable[[str], list[int]],
    leading: list[int] | None = None,
) -> list[int]:
    """Token ids of a PSM FIM prompt; `leading` are the tokenizer's own start tokens (BOS)."""
    return [
        *(leading or []),
        tokens.prefix_id,
        *encode(prefix),
        tokens.suffix_id,
        *encode(suffix),
        tokens.middle_id,
    ]


def fim_prompt_text(prefix: str, suffix: str, style: FimStyle) -> str:
    """The same PSM prompt as text (what llm-vscode sends in TGI's `inputs`)."""
    return f"{style.prefix}{prefix}{style.suffix}{suffix}{style.middle}"


def split_fim_text(inputs: str, style: FimStyle) -> tuple[str, str] | None:
    """(prefix, suffix) of a PSM prompt given as text, or None when `inputs` is not one."""
    if not inputs.startswith(style.prefix) or not inputs.endswith(style.middle):
        return None
    body = inputs[len(style.prefix) : len(inputs) - len(style.middle)]
    if body.count(style.suffix) != 1:
        return None
    prefix, suffix = body.split(style.suffix)
    return prefix, suffix
