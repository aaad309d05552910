"""The one FIM table: training and serving find the same tokens in a vocabulary."""

from __future__ import annotations

import pytest

from tailor.fim import CODELLAMA, STARCODER, FimError, detect_fim, require_fim
from tailor.train.fim import resolve_fim_tokens

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
