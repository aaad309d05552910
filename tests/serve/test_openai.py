"""The OpenAI SDK against a live server: FIM completions, streaming, chat, models, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest

from .conftest import BASE_NAME, FIM_PREFIX, FIM_SUFFIX, LiveServer, Registry, start_server

FIM_TOKENS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<|endoftext|>")


def engine_text(engine: TailorEngine, registry: Registry, model: str, **kw: object) -> str:
    req = GenerationRequest(adapter=registry.published[("acme", model)], **kw)  # type: ignore[arg-type]
    return engine.generate(req)[0].text


def test_fim_completion_matches_the_engine_for_the_same_seed(
    acme_client: openai.OpenAI, engine: TailorEngine, registry: Registry
) -> None:
    out = acme_client.completions.create(
        model="py", prompt=FIM_PREFIX, suffix=FIM_SUFFIX, max_tokens=24, temperature=0.8, seed=7
    )
    direct = engine_text(
        engine,
        registry,
        "py",
        prompt=FIM_PREFIX,
        suffix=FIM_SUFFIX,
        max_new_tokens=24,
        temperature=0.8,
        seed=7,
    )
    assert out.choices[0].text == direct
    assert out.usage is not None and out.usage.prompt_tokens > 10


def test_streamed_completion_adds_up_to_the_whole_one(acme_client: openai.OpenAI) -> None:
    args = {
        "model": "py",
        "prompt": FIM_PREFIX,
        "suffix": FIM_SUFFIX,
        "max_tokens": 32,
        "temperature": 0.9,
        "seed": 3,
    }
    whole = acme_client.completions.create(**args)
    chunks = list(acme_client.completions.create(stream=True, **args))
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.object == "text_completion" for c in chunks)


def test_a_long_stream_interval_sends_the_first_chunk_then_the_rest_merged(
    serve_app: Callable[..., FastAPI],
) -> None:
    from openai import OpenAI

    live = start_server(serve_app(stream_interval_s=60.0))
    try:
        client = OpenAI(base_url=f"{live.url}/v1", api_key="tok-acme", max_retries=0)
        args = {"model": "py", "prompt": "import os\n", "max_tokens": 24, "seed": 2}
        args |= {"temperature": 0.9, "extra_body": {"ignore_eos": True}}
        chunks = list(client.completions.create(stream=True, **args))
        whole = client.completions.create(**args)
    finally:
        live.stop()
    assert len(chunks) == 2  # every chunk between the first and the last waits for the end
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text


def test_stream_ends_with_done_in_openai_format(server: LiveServer) -> None:
    body = {"model": "py", "prompt": "import os\n", "max_tokens": 8, "stream": True, "seed": 1}
    resp = httpx.post(
        f"{server.url}/v1/completions",
        json=body,
        headers={"Authorization": "Bearer tok-acme"},
        timeout=60,
    )
    events = [line for line in resp.text.split("\n\n") if line]
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1])


def test_completion_never_contains_fim_tokens_or_eos(acme_client: openai.OpenAI) -> None:
    out = acme_client.completions.create(
        model="py",
        prompt=FIM_PREFIX,
        suffix=FIM_SUFFIX,
        max_tokens=48,
        temperature=1.0,
        n=4,
        seed=11,
    )
    texts = [c.text for c in out.choices]
    assert len(texts) == 4
    assert not any(tok in t for t in texts for tok in FIM_TOKENS)


def test_base_model_is_served_as_base(acme_client: openai.OpenAI, engine: TailorEngine) -> None:
    out = acme_client.completions.create(
        model="<base>", prompt="import ", max_tokens=8, temperature=0.0
    )
    direct = engine.generate(GenerationRequest(prompt="import ", max_new_tokens=8))[0].text
    assert out.choices[0].text == direct


def test_logprobs_are_returned_when_asked(acme_client: openai.OpenAI) -> None:
    out = acme_client.completions.create(
        model="py",
        prompt="def ",
        max_tokens=4,
        temperature=0,
        logprobs=2,
        extra_body={"stop_at_block_end": False},
    )
    lp = out.choices[0].logprobs
    assert lp is not None and lp.token_logprobs and all(v <= 0 for v in lp.token_logprobs)


def test_chat_completion_streams_and_matches(acme_client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "write a function that adds two numbers"}]
    whole = acme_client.chat.completions.create(
        model="py", messages=messages, max_tokens=16, temperature=0.7, seed=5
    )
    parts = acme_client.chat.completions.create(
        model="py", messages=messages, max_tokens=16, temperature=0.7, seed=5, stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
    assert whole.choices[0].message.role == "assistant"
    assert streamed == whole.choices[0].message.content


def test_models_lists_the_teams_adapters_and_the_base(acme_client: openai.OpenAI) -> None:
    ids = {m.id for m in acme_client.models.list()}
    assert ids == {"py", BASE_NAME}


def test_other_teams_adapter_is_not_found(acme_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        acme_client.completions.create(model="go", prompt="x", max_tokens=4)
    assert err.value.code == "model_not_found"


def test_unknown_token_is_refused(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.completions.create(model="py", prompt="x", max_tokens=4)


def test_prompt_over_the_context_is_a_400_with_the_numbers(acme_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        acme_client.completions.create(model="py", prompt="x = 1\n" * 400, max_tokens=64)
    assert err.value.code == "context_length_exceeded"
    assert "512" in err.value.message and "64 for the completion" in err.value.message


def test_max_tokens_over_the_limit_is_a_400(acme_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        acme_client.completions.create(model="py", prompt="x", max_tokens=100_000)
    assert err.value.code == "max_tokens_exceeded"


def post_completion(server: LiveServer, token: str, **body: Any) -> httpx.Response:
    """A raw POST to /v1/completions (`json=` or `content=`), for what SDKs never send."""
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.post(f"{server.url}/v1/completions", headers=auth, **body)


def test_malformed_json_is_a_clear_400(server: LiveServer) -> None:
    resp = post_completion(server, "tok-acme", content=b'{"model": "py", "prompt": ')
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]["message"]


def test_missing_field_is_a_422_naming_it(server: LiveServer) -> None:
    resp = post_completion(server, "tok-acme", json={"prompt": "x"})
    assert resp.status_code == 422
    assert resp.json()["error"]["param"] == "model"


def test_an_unknown_token_is_refused_before_the_body_is_judged(server: LiveServer) -> None:
    resp = post_completion(server, "nope", json={"prompt": "x"})
    assert resp.status_code == 401


def test_llm_ls_openai_body_with_nested_tgi_parameters(
    server: LiveServer, engine: TailorEngine, registry: Registry
) -> None:
    # llm-ls's build_body for its OpenAI backend: the user's requestBody (llm-ls's default,
    # TGI's `parameters`) with the FIM prompt it wrote in the model's tokens, model and stream.
    params = {"max_new_tokens": 24, "temperature": 0.2, "top_p": 0.95, "seed": 3}
    body = {
        "parameters": params,
        "prompt": f"<fim_prefix>{FIM_PREFIX}<fim_suffix>{FIM_SUFFIX}<fim_middle>",
        "model": "py",
        "stream": False,
    }
    resp = httpx.post(
        f"{server.url}/v1/completions",
        json=body,
        headers={
            "User-Agent": "llm-ls/0.5.3; rust/unknown; ide/VSCode",
            "Authorization": "Bearer tok-acme",
        },
        timeout=60,
    )
    direct = engine.generate(
        GenerationRequest(
            prompt=FIM_PREFIX,
            suffix=FIM_SUFFIX,
            adapter=registry.published[("acme", "py")],
            max_new_tokens=24,
            temperature=0.2,
            top_p=0.95,
            seed=3,
        )
    )[0].text
    text = resp.json()["choices"][0]["text"]
    assert text == direct
    assert not any(tok in text for tok in FIM_TOKENS)


def test_an_endpoint_named_with_the_base_family_is_the_endpoint(
    acme_client: openai.OpenAI,
) -> None:
    def complete(model: str) -> str:
        out = acme_client.completions.create(
            model=model, prompt=FIM_PREFIX, suffix=FIM_SUFFIX, max_tokens=16, temperature=0
        )
        return out.choices[0].text

    assert complete(f"py-{BASE_NAME}") == complete("py")


def test_another_teams_endpoint_named_with_the_family_is_404(
    acme_client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.NotFoundError):
        acme_client.completions.create(model=f"go-{BASE_NAME}", prompt="def ", max_tokens=4)


def test_the_base_answers_to_its_listed_id(
    acme_client: openai.OpenAI, engine: TailorEngine
) -> None:
    out = acme_client.completions.create(
        model=BASE_NAME, prompt="import ", max_tokens=8, temperature=0.0
    )
    direct = engine.generate(GenerationRequest(prompt="import ", max_new_tokens=8))[0].text
    assert out.choices[0].text == direct
