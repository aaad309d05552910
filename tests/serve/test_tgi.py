"""huggingface_hub's InferenceClient (TGI protocol, what llm-ls speaks) against a live server."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, ValidationError

from tailor.fim import STARCODER
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.fim import fim_prompt_text
from tailor.stages.serve.generation import GenerationRequest

from .conftest import FIM_PREFIX, FIM_SUFFIX, LiveServer, Registry

FIM_INPUTS = fim_prompt_text(FIM_PREFIX, FIM_SUFFIX, STARCODER)


def test_streaming_text_generation_matches_the_engine(
    server: LiveServer, engine: TailorEngine, registry: Registry
) -> None:
    client = InferenceClient(model=f"{server.url}/tgi/go", token="tok-beta")
    pieces = list(
        client.text_generation(
            FIM_INPUTS, max_new_tokens=24, do_sample=True, temperature=0.8, seed=9, stream=True
        )
    )
    direct = engine.generate(
        GenerationRequest(
            prompt=FIM_PREFIX,
            suffix=FIM_SUFFIX,
            adapter=registry.published[("beta", "go")],
            max_new_tokens=24,
            temperature=0.8,
            seed=9,
        )
    )[0].text
    assert "".join(pieces) == direct
    assert len(pieces) > 1


def test_generate_with_details_reports_the_finish(server: LiveServer) -> None:
    client = InferenceClient(model=f"{server.url}/tgi/go", token="tok-beta")
    out = client.text_generation("import ", max_new_tokens=5, details=True)
    assert out.details is not None and out.details.generated_tokens <= 5
    assert out.details.finish_reason in ("length", "eos_token")


def test_llm_ls_style_generate_returns_generated_text(server: LiveServer) -> None:
    body = {
        "inputs": FIM_INPUTS,
        "parameters": {
            "max_new_tokens": 16,
            "temperature": 0.2,
            "top_p": 0.95,
            "return_full_text": False,
        },
    }
    resp = httpx.post(
        f"{server.url}/tgi/py/generate",
        json=body,
        headers={"Authorization": "Bearer tok-acme"},
        timeout=60,
    )
    assert resp.status_code == 200
    text = resp.json()["generated_text"]
    assert "<fim_" not in text and not text.startswith(FIM_PREFIX)


def test_adapter_id_parameter_selects_the_adapter(
    server: LiveServer, engine: TailorEngine, registry: Registry
) -> None:
    client = InferenceClient(model=server.url, token="tok-acme")
    out = client.text_generation("def ", max_new_tokens=8, adapter_id="py")
    direct = engine.generate(
        GenerationRequest(
            prompt="def ", adapter=registry.published[("acme", "py")], max_new_tokens=8
        )
    )[0].text
    assert out == direct


def test_other_teams_adapter_is_not_found_over_tgi(server: LiveServer) -> None:
    client = InferenceClient(model=f"{server.url}/tgi/go", token="tok-acme")
    with pytest.raises(ValidationError, match="does not exist") as err:
        client.text_generation("x", max_new_tokens=4)
    cause = err.value.__cause__
    assert isinstance(cause, HfHubHTTPError) and cause.response is not None
    assert cause.response.status_code == 404
