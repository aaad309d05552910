"""Fill-in-the-middle: cut a document into prefix/middle/suffix and lay it out in its style.

Formats (as in StarCoder's training; most families differ only in token names):
  PSM  <pre> prefix <suf> suffix <mid> middle
  SPM  <pre> <suf> suffix <mid> prefix middle
  Mistral (Codestral), always:  [SUFFIX] suffix [PREFIX] prefix middle
The order comes from the one table (`tailor.fim.fim_layout`), which serving reads too.
The cut points are character positions, so a split can fall inside a token.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from tailor.fim import FimError, FimNames, FimTokens, fim_layout, require_fim
from tailor.stages.train.errors import SpecError


def resolve_fim_tokens(vocab: dict[str, int], names: FimNames | None) -> FimTokens:
    """Ids of the named FIM tokens, or of the first known style; SpecError if it has none."""
    try:
        return require_fim(vocab, names)
    except FimError as exc:
        # Retrying the same spec fails the same way: a SpecError (exit 3), with what to change.
        raise SpecError(
            f"{exc}; set fim_tokens in the spec to its token names, "
            "or fim_rate=0 to train plain left-to-right"
        ) from exc


def split_points(length: int, rng: random.Random) -> tuple[int, int]:
    """Two sorted character positions in [0, length]: the middle is text[a:b]."""
    a, b = rng.randint(0, length), rng.randint(0, length)
    return (a, b) if a <= b else (b, a)


def fim_order(
    prefix: Sequence[int], middle: Sequence[int], suffix: Sequence[int], ids: FimTokens, spm: bool
) -> list[int]:
    """Token ids of one FIM example in its style's order (SPM where the style has it)."""
    return fim_layout(ids, prefix, suffix, middle, spm)


def encode_document(
    text: str,
    encode: Callable[[str], list[int]],
    ids: FimTokens | None,
    rng: random.Random,
    fim_rate: float,
    spm_rate: float,
    head: str = "",
) -> list[int]:
    """Token ids of one document: FIM with probability fim_rate, else plain left-to-right.

    `head` (a file's path line) opens the prefix and is never cut into the middle.
    """
    # Draw both decisions always, so the random stream does not depend on the text.
    do_fim, do_spm = rng.random() < fim_rate, rng.random() < spm_rate
    if ids is None or not do_fim:
        return encode(head + text)
    a, b = split_points(len(text), rng)
    return fim_order(encode(head + text[:a]), encode(text[a:b]), encode(text[b:]), ids, do_spm)


def tokenizer_fim_ids(tokenizer: Any, names: FimNames | None) -> FimTokens:
    """FIM token ids of a transformers tokenizer (its full vocabulary, specials included)."""
    return resolve_fim_tokens(tokenizer.get_vocab(), names)
