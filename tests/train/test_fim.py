"""FIM with the tokenizer's own FIM tokens: PSM and SPM, and the middle comes back."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from tailor.fim import CODELLAMA, FimError, FimTokens
from tailor.stages.train.data import token_pipeline
from tailor.stages.train.errors import SpecError
from tailor.stages.train.fim import (
    encode_document,
    fim_order,
    resolve_fim_tokens,
    tokenizer_fim_ids,
)

CODE = 'def greet(name):\n    """Say hello."""\n    return f"hello {name}"\n'


def parse_psm(tokens: Sequence[int], ids: FimTokens) -> tuple[list[int], list[int], list[int]]:
    """Recover (prefix, middle, suffix) ids from a PSM example."""
    toks = list(tokens)
    if len(toks) < 3 or toks[0] != ids.prefix_id:
        raise FimError("not a FIM example: it does not start with the prefix token")
    suf_at, mid_at = toks.index(ids.suffix_id), toks.index(ids.middle_id)
    return toks[1:suf_at], toks[mid_at + 1 :], toks[suf_at + 1 : mid_at]


def parse_spm(
    tokens: Sequence[int], ids: FimTokens, prefix_len: int
) -> tuple[list[int], list[int], list[int]]:
    """Recover (prefix, middle, suffix) from an SPM example, given the prefix's token count.

    In SPM the prefix and the middle follow `<mid>` back to back, so the split needs it.
    """
    toks = list(tokens)
    if toks[:2] != [ids.prefix_id, ids.suffix_id]:
        raise FimError("not an SPM example: it does not start with prefix, suffix tokens")
    mid_at = toks.index(ids.middle_id)
    tail = toks[mid_at + 1 :]
    return tail[:prefix_len], tail[prefix_len:], toks[2:mid_at]


def _encode(tokenizer: Any) -> Any:
    return token_pipeline(tokenizer, None, 0.0, 0.0).encode


def test_the_tiny_tokenizer_brings_starcoders_fim_tokens(tokenizer: Any) -> None:
    ids = tokenizer_fim_ids(tokenizer, None)

    names = tokenizer.convert_ids_to_tokens([ids.prefix_id, ids.suffix_id, ids.middle_id])
    assert names == ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]


def test_psm_puts_prefix_suffix_then_middle_and_the_middle_round_trips(tokenizer: Any) -> None:
    ids, encode = tokenizer_fim_ids(tokenizer, None), _encode(tokenizer)
    prefix, middle, suffix = CODE[:10], CODE[10:30], CODE[30:]

    example = fim_order(encode(prefix), encode(middle), encode(suffix), ids, spm=False)

    p, m, s = parse_psm(example, ids)
    assert example[0] == ids.prefix_id
    assert [tokenizer.decode(x) for x in (p, m, s)] == [prefix, middle, suffix]


def test_spm_puts_suffix_first_and_prefix_right_before_the_middle(tokenizer: Any) -> None:
    ids, encode = tokenizer_fim_ids(tokenizer, None), _encode(tokenizer)
    prefix, middle, suffix = encode(CODE[:10]), encode(CODE[10:30]), encode(CODE[30:])

    example = fim_order(prefix, middle, suffix, ids, spm=True)

    assert example[:2] == [ids.prefix_id, ids.suffix_id]
    assert example[2 : 2 + len(suffix)] == suffix
    assert parse_spm(example, ids, len(prefix)) == (prefix, middle, suffix)


@pytest.mark.parametrize("spm_rate", [0.0, 1.0])
def test_at_fim_rate_1_every_document_is_fim_and_its_text_is_kept(
    tokenizer: Any, spm_rate: float
) -> None:
    ids, encode = tokenizer_fim_ids(tokenizer, None), _encode(tokenizer)
    rng = random.Random(7)

    for _ in range(20):
        example = encode_document(CODE, encode, ids, rng, fim_rate=1.0, spm_rate=spm_rate)
        text = tokenizer.decode([t for t in example if t not in (ids.prefix_id, ids.suffix_id)])
        before, after = text.split("<fim_middle>")
        if spm_rate == 1.0:  # SPM: suffix <mid> prefix middle
            assert example[:2] == [ids.prefix_id, ids.suffix_id]
            assert CODE.endswith(before) and (after + before) == CODE
        else:  # PSM: prefix suffix <mid> middle, so the document is prefix + middle + suffix
            assert example[0] == ids.prefix_id
            p_ids, m_ids, s_ids = parse_psm(example, ids)
            decoded = [tokenizer.decode(x) for x in (p_ids, m_ids, s_ids)]
            assert "".join(decoded) == CODE


def test_at_fim_rate_0_documents_stay_left_to_right(tokenizer: Any) -> None:
    ids, encode = tokenizer_fim_ids(tokenizer, None), _encode(tokenizer)

    example = encode_document(CODE, encode, ids, random.Random(0), fim_rate=0.0, spm_rate=0.5)

    assert example == encode(CODE)


def test_special_token_text_inside_a_file_stays_plain_text(tokenizer: Any) -> None:
    encode = _encode(tokenizer)

    ids = encode("x = '<fim_prefix><|endoftext|>'")

    assert tokenizer.eos_token_id not in ids
    assert tokenizer.convert_tokens_to_ids("<fim_prefix>") not in ids


def test_codellama_style_tokens_are_found_without_configuration() -> None:
    vocab = {CODELLAMA.prefix: 32007, CODELLAMA.suffix: 32008, CODELLAMA.middle: 32009, "a": 1}

    ids = resolve_fim_tokens(vocab, None)

    assert (ids.prefix_id, ids.suffix_id, ids.middle_id) == (32007, 32008, 32009)


def test_a_tokenizer_without_fim_tokens_gets_an_actionable_error() -> None:
    with pytest.raises(SpecError, match=r"set fim_tokens in the spec .* or fim_rate=0"):
        resolve_fim_tokens({"a": 1, "b": 2}, None)
