"""The one FIM table: training and serving find the same tokens in a vocabulary."""

from __future__ import annotations

import pytest

from tailor.fim import (
    CODEGEMMA,
    CODELLAMA,
    CODESTRAL,
    DEEPSEEK_CODER,
    QWEN_CODER,
    STARCODER,
    STARCODER2,
    FimError,
    FimStyle,
    detect_fim,
    require_fim,
    style_named,
)
from tailor.stages.serve.fim import fim_prompt_ids, fim_prompt_text, split_fim_text
from tailor.stages.train.fim import fim_order, resolve_fim_tokens
from tailor.stages.train.spec import FimTokenNames

CODELLAMA_VOCAB = {CODELLAMA.prefix: 32007, CODELLAMA.suffix: 32008, CODELLAMA.middle: 32009}


def test_a_vocabulary_without_fim_tokens_is_no_fim_model_when_none_was_asked_for() -> None:
    assert detect_fim({"a": 1}) is None


def test_asking_for_a_style_the_vocabulary_lacks_is_an_error() -> None:
    with pytest.raises(FimError, match="<fim_prefix>/<fim_suffix>/<fim_middle>"):
        detect_fim(CODELLAMA_VOCAB, STARCODER)


def test_require_names_every_known_style_when_none_is_found() -> None:
    with pytest.raises(FimError, match=r"<fim_prefix>.*▁<PRE>"):
        require_fim({"a": 1})


def test_training_finds_the_style_serving_finds_without_configuration() -> None:
    trained = resolve_fim_tokens(CODELLAMA_VOCAB, None)

    assert trained == detect_fim(CODELLAMA_VOCAB)
    assert trained.style is CODELLAMA


FAMILIES = (STARCODER, STARCODER2, CODELLAMA, QWEN_CODER, DEEPSEEK_CODER, CODESTRAL, CODEGEMMA)


def family_vocab(style: FimStyle) -> dict[str, int]:
    """A vocabulary with the family's FIM and repository tokens, as its tokenizer has them."""
    texts = (style.prefix, style.suffix, style.middle, *style.extra, *style.repo_tokens)
    return {"a": 0, "b": 1} | {t: 100 + i for i, t in enumerate(texts)}


@pytest.mark.parametrize("style", FAMILIES, ids=lambda s: s.name)
def test_each_family_is_detected_from_its_own_tokens(style: FimStyle) -> None:
    found = detect_fim(family_vocab(style))

    assert found is not None and found.style is style


def test_qwen_and_codegemma_share_fim_texts_but_not_their_file_separator() -> None:
    qwen, gemma = detect_fim(family_vocab(QWEN_CODER)), detect_fim(family_vocab(CODEGEMMA))

    assert qwen is not None and gemma is not None
    assert (qwen.style, gemma.style) == (QWEN_CODER, CODEGEMMA)
    assert "<|file_sep|>" in qwen.texts and "<|file_separator|>" in gemma.texts


@pytest.mark.parametrize("style", FAMILIES, ids=lambda s: s.name)
def test_training_layout_and_serving_prompt_agree_for_each_family(style: FimStyle) -> None:
    tokens = require_fim(family_vocab(style))
    prefix, middle, suffix = [1, 1], [0], [1]

    trained = fim_order(prefix, middle, suffix, tokens, spm=False)
    served = fim_prompt_ids("aa", "a", tokens, lambda s: [1] * len(s))

    assert trained[: len(served)] == served and trained[len(served) :] == middle


def test_codestral_puts_the_suffix_first_as_mistral_common_encodes_it() -> None:
    t = require_fim(family_vocab(CODESTRAL))

    served = fim_prompt_ids("def f(", "return a", t, lambda s: [ord(c) for c in s])

    assert served == [t.suffix_id, *map(ord, "return a"), t.prefix_id, *map(ord, "def f(")]


def test_codestral_has_no_spm_variant_in_training() -> None:
    t = require_fim(family_vocab(CODESTRAL))

    assert fim_order([7], [8], [9], t, spm=True) == [t.suffix_id, 9, t.prefix_id, 7, 8]


def test_deepseek_coder_writes_begin_prefix_hole_suffix_end() -> None:
    t = require_fim(family_vocab(DEEPSEEK_CODER))

    text = fim_prompt_text("x = ", "\ny = 2", DEEPSEEK_CODER)

    begin, hole, end = (
        "<\uff5cfim\u2581begin\uff5c>",
        "<\uff5cfim\u2581hole\uff5c>",
        "<\uff5cfim\u2581end\uff5c>",
    )
    assert text == f"{begin}x = {hole}\ny = 2{end}"
    assert t.order == "psm"


@pytest.mark.parametrize("style", FAMILIES, ids=lambda s: s.name)
def test_a_text_prompt_in_each_familys_order_splits_back(style: FimStyle) -> None:
    text = fim_prompt_text("a = ", "\nb = 2", style)

    assert split_fim_text(text, style) == ("a = ", "\nb = 2")


def test_spec_token_names_of_a_family_take_its_order() -> None:
    names = FimTokenNames(prefix="[PREFIX]", suffix="[SUFFIX]", middle="[MIDDLE]")

    assert resolve_fim_tokens(family_vocab(CODESTRAL), names).order == "suffix_first"


def test_file_separators_and_repo_names_never_reach_a_client() -> None:
    t = require_fim(family_vocab(STARCODER2))

    assert {"<repo_name>", "<file_sep>", "<fim_pad>"} <= set(t.texts)


def test_codestrals_ollama_template_sends_the_suffix_first() -> None:
    from tailor.stages.serve.ollama import template

    assert "[SUFFIX]{{ .Suffix }}[PREFIX]{{ .Prompt }}{{- else }}" in template(CODESTRAL)


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (("bigcode/starcoder2-3b", "starcoder2"), "starcoder2"),
        (("tiny-starcoder", ""), "starcoder"),
        (("house-base", "gpt_bigcode"), "starcoder"),
        (("Qwen/Qwen2.5-Coder-1.5B", "qwen2"), "qwen2.5-coder"),
        (("codellama/CodeLlama-7b-hf", "llama"), "codellama"),
        (("deepseek-ai/deepseek-coder-1.3b-base", "llama"), "deepseek-coder"),
        (("mistralai/Codestral-22B-v0.1", "mistral"), "codestral"),
        (("google/codegemma-2b", "gemma"), "codegemma"),
    ],
)
def test_a_family_is_told_by_its_names_where_no_tokenizer_is_at_hand(
    names: tuple[str, str], family: str
) -> None:
    style = style_named(*names)
    assert style is not None and style.name == family


def test_names_of_no_known_family_name_no_style() -> None:
    assert style_named("meta-llama/Llama-3.2-1B", "llama") is None
