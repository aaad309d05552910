"""Operations: promotion without failures, disconnects, limits, timeouts, readiness, metrics,
graceful shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI

from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.spec import EndpointLimits
from tailor.storage import FileStore

from .conftest import TOKENS, AdapterFactory, LiveServer, Registry, start_server

LONG = {"ignore_eos": True, "stop_at_block_end": False}


def client_for(live: LiveServer, token: str = "tok-acme") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=token, max_retries=0)


def test_promotion_switches_versions_without_failed_requests(
    server: LiveServer, registry: Registry, adapters: AdapterFactory, engine: TailorEngine
) -> None:
    v1 = adapters.create("acme", "promo", "1", seed=21)
    v2 = adapters.create("acme", "promo", "2", seed=22)
    registry.published[("acme", "promo")] = v1
    client = client_for(server)
    errors: list[Exception] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                client.completions.create(model="promo", prompt="x", max_tokens=4)
            except Exception as exc:  # any failure is what this test is about
                errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    registry.published[("acme", "promo")] = v2  # the registry promotes version 2
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    served = (
        client.completions.create(
            model="promo", prompt="def ", max_tokens=8, temperature=0, extra_body=LONG
        )
        .choices[0]
        .text
    )
    want = engine.generate(GenerationRequest(prompt="def ", adapter=v2, max_new_tokens=8, **LONG))[
        0
    ].text  # type: ignore[arg-type]
    assert errors == []
    assert served == want


def test_client_disconnect_mid_stream_stops_generation(
    server: LiveServer, engine: TailorEngine
) -> None:
    client = client_for(server)
    stream = client.completions.create(
        model="py", prompt="x", max_tokens=450, stream=True, extra_body=LONG
    )
    seen = len(engine.finished)
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    deadline = time.monotonic() + 10
    while len(engine.finished) == seen and time.monotonic() < deadline:
        time.sleep(0.01)
    ended = engine.finished[-1]
    assert ended.reason == "cancelled" and ended.completion_tokens < 450


def test_rate_limit_answers_429_with_retry_after(serve_app: Callable[..., FastAPI]) -> None:
    limits = EndpointLimits(requests_per_minute=2, max_tokens=64, request_timeout_s=30)
    live = start_server(serve_app(limits=lambda team: limits))
    try:
        client = client_for(live)
        for _ in range(2):
            client.completions.create(model="py", prompt="x", max_tokens=2)
        with pytest.raises(openai.RateLimitError) as err:
            client.completions.create(model="py", prompt="x", max_tokens=2)
        other = client_for(live, "tok-beta").completions.create(
            model="go", prompt="x", max_tokens=2
        )
    finally:
        live.stop()
    assert int(err.value.response.headers["Retry-After"]) >= 1
    assert other.choices  # the limit is per team


def test_request_past_its_timeout_is_a_504(serve_app: Callable[..., FastAPI]) -> None:
    limits = EndpointLimits(requests_per_minute=100, max_tokens=500, request_timeout_s=0.05)
    live = start_server(serve_app(limits=limits))
    try:
        with pytest.raises(openai.APIStatusError) as err:
            client_for(live).completions.create(
                model="py", prompt="x", max_tokens=450, extra_body=LONG
            )
    finally:
        live.stop()
    assert err.value.status_code == 504


def test_ready_only_after_the_base_model_is_loaded(tiny_base: Path, tmp_path: Path) -> None:
    release = threading.Event()

    def slow_loader(ref: str) -> Path:
        release.wait(30)
        return Path(ref)

    eng = TailorEngine(str(tiny_base), FileStore(tmp_path), loader=slow_loader)
    from tailor.stages.serve.app import create_serving_app
    from tailor.stages.serve.callers import lookup_from

    live = start_server(create_serving_app(eng, lookup=lookup_from(TOKENS.get, lambda t, m: None)))
    try:
        loading = httpx.get(f"{live.url}/readyz").status_code
        healthy = httpx.get(f"{live.url}/healthz").status_code
        release.set()
        eng.wait_ready(60)
        ready = httpx.get(f"{live.url}/readyz").status_code
    finally:
        live.stop()
        eng.close()
    assert (loading, healthy, ready) == (503, 200, 200)


def test_metrics_count_requests_tokens_and_adapter_loads(
    server: LiveServer, adapters: AdapterFactory, registry: Registry
) -> None:
    # An adapter no earlier test touched, so its first load happens under this server's metrics.
    registry.published[("beta", "rs")] = adapters.create("beta", "rs", "1", seed=7)
    client_for(server, "tok-beta").completions.create(
        model="rs", prompt="x", max_tokens=3, extra_body=LONG
    )
    text = httpx.get(f"{server.url}/metrics").text
    assert (
        'tailor_serve_requests_total{adapter="rs",route="completions",status="200",'
        'team="beta"}' in text
    )
    assert 'tailor_serve_completion_tokens_total{adapter="rs",team="beta"}' in text
    assert 'tailor_serve_time_to_first_token_seconds_bucket{adapter="rs"' in text
    assert (
        'tailor_serve_adapter_events_total{adapter="teams/beta/adapters/rs/1",event="load"}' in text
    )


def test_metrics_are_not_served_through_a_proxy(server: LiveServer) -> None:
    # Its series name every team and adapter: no IDE user behind the Ingress may list them.
    headers = {"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer tok-acme"}

    assert httpx.get(f"{server.url}/metrics", headers=headers).status_code == 404


def test_with_a_metrics_token_only_its_holder_reads_the_metrics(
    serve_app: Callable[..., FastAPI],
) -> None:
    live = start_server(serve_app(metrics_token="metrics-token-for-tests"))
    try:
        without = httpx.get(f"{live.url}/metrics")
        holder = {"Authorization": "Bearer metrics-token-for-tests"}
        held = httpx.get(f"{live.url}/metrics", headers=holder)
    finally:
        live.stop()

    assert without.status_code == 404
    assert held.status_code == 200 and "tailor_serve_in_flight" in held.text


def test_shutdown_drains_a_stream_in_flight(serve_app: Callable[..., FastAPI]) -> None:
    live = start_server(serve_app(), timeout_graceful_shutdown=30)
    stream = client_for(live).completions.create(
        model="py", prompt="x", max_tokens=300, stream=True, extra_body=LONG
    )
    chunks = [next(iter(stream))]
    stopper = threading.Thread(target=live.stop)
    stopper.start()
    chunks.extend(stream)
    stopper.join()
    assert chunks[-1].choices[0].finish_reason == "length"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{live.url}/healthz")
