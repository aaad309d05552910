"""Fill-in-the-middle: cut a document into prefix/middle/suffix and order it PSM or SPM.

Formats (as in StarCoder's training; CodeLlama's differ only in token names):
  PSM  <pre> prefix <suf> suffix <mid> middle
  SPM  <pre> <suf> suffix <mid> prefix middle
The cut points are character positions, so a split can fall inside a token.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tailor.train.errors import SpecError
from tailor.train.spec import FimTokenNames

STARCODER = FimTokenNames(
    prefix="<fim_prefix>", suffix="<fim_suffix>", middle="<fim_middle>", pad="<fim_pad>"
)
CODELLAMA = FimTokenNames(prefix="▁<PRE>", suffix="▁<SUF>", middle="▁<MID>", pad=None)
KNOWN_STYLES = (STARCODER, CODELLAMA)


class FimError(SpecError):
    """The tokenizer lacks the FIM tokens the spec asks for."""


@dataclass(frozen=True)
class FimTokenIds:
    """Ids of the FIM tokens in one tokenizer."""

    prefix: int
    suffix: int
    middle: int


def resolve_fim_tokens(vocab: dict[str, int], names: FimTokenNames | None) -> FimTokenIds:
    """Ids of the named FIM tokens, or of the first known style the vocabulary has."""
    candidates = [names] if names is not None else list(KNOWN_STYLES)
    for style in candidates:
        if all(t in vocab for t in (style.prefix, style.suffix, style.middle)):
            return FimTokenIds(vocab[style.prefix], vocab[style.suffix], vocab[style.middle])
    wanted = ", ".join(f"{s.prefix}/{s.suffix}/{s.middle}" for s in candidates)
    raise FimError(
        f"the tokenizer has no FIM tokens ({wanted}); set fim_tokens in the spec to its "
        "token names, or fim_rate=0 to train plain left-to-right"
    )


def split_points(length: int, rng: random.Random) -> tuple[int, int]:
    """Two sorted character positions in [0, length]: the middle is text[a:b]."""
    a, b = rng.randint(0, length), rng.randint(0, length)
    return (a, b) if a <= b else (b, a)


def fim_order(
    prefix: Sequence[int], middle: Sequence[int], suffix: Sequence[int], ids: FimTokenIds, spm: bool
) -> list[int]:
    """Token ids of one FIM example in PSM or SPM order."""
    if spm:
        return [ids.prefix, ids.suffix, *suffix, ids.middle, *prefix, *middle]
    return [ids.prefix, *prefix, ids.suffix, *suffix, ids.middle, *middle]


def encode_document(
    text: str,
    encode: Callable[[str], list[int]],
    ids: FimTokenIds | None,
    rng: random.Random,
    fim_rate: float,
    spm_rate: float,
) -> list[int]:
    """Token ids of one document: FIM with probability fim_rate, else plain left-to-right."""
    # Draw both decisions always, so the random stream does not depend on the text.
    do_fim, do_spm = rng.random() < fim_rate, rng.random() < spm_rate
    if ids is None or not do_fim:
        return encode(text)
    a, b = split_points(len(text), rng)
    return fim_order(encode(text[:a]), encode(text[a:b]), encode(text[b:]), ids, do_spm)


def parse_psm(tokens: Sequence[int], ids: FimTokenIds) -> tuple[list[int], list[int], list[int]]:
    """Recover (prefix, middle, suffix) ids from a PSM example."""
    toks = list(tokens)
    if len(toks) < 3 or toks[0] != ids.prefix:
        raise FimError("not a FIM example: it does not start with the prefix token")
    suf_at, mid_at = toks.index(ids.suffix), toks.index(ids.middle)
    return toks[1:suf_at], toks[mid_at + 1 :], toks[suf_at + 1 : mid_at]


def parse_spm(
    tokens: Sequence[int], ids: FimTokenIds, prefix_len: int
) -> tuple[list[int], list[int], list[int]]:
    """Recover (prefix, middle, suffix) from an SPM example, given the prefix's token count.

    In SPM the prefix and the middle follow `<mid>` back to back, so the split needs it.
    """
    toks = list(tokens)
    if toks[:2] != [ids.prefix, ids.suffix]:
        raise FimError("not an SPM example: it does not start with prefix, suffix tokens")
    mid_at = toks.index(ids.middle)
    tail = toks[mid_at + 1 :]
    return tail[:prefix_len], tail[prefix_len:], toks[2:mid_at]


def tokenizer_fim_ids(tokenizer: Any, names: FimTokenNames | None) -> FimTokenIds:
    """FIM token ids of a transformers tokenizer (its full vocabulary, specials included)."""
    return resolve_fim_tokens(tokenizer.get_vocab(), names)
