"""FIM prompts: the model's own tokens, laid out as training lays out PSM examples."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from tailor.fim import STARCODER
from tailor.stages.serve.fim import fim_prompt_text, split_fim_text
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.prompting import Prompter
from tailor.stages.train.fim import fim_order, tokenizer_fim_ids


def test_fim_prompt_ids_match_the_training_layout(tiny_base: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_base)
    prompter = Prompter(tok, 512)
    ids = prompter.prompt_ids(GenerationRequest(prompt="def f(x):\n    ", suffix="\n"))
    enc = prompter.encode
    trained = fim_order(
        enc("def f(x):\n    "), [], enc("\n"), tokenizer_fim_ids(tok, None), spm=False
    )
    assert ids == trained


def test_tgi_inputs_with_fim_tokens_split_back_into_prefix_and_suffix() -> None:
    text = fim_prompt_text("a = ", "\nb = 2", STARCODER)
    assert split_fim_text(text, STARCODER) == ("a = ", "\nb = 2")
    assert split_fim_text("plain prompt", STARCODER) is None
