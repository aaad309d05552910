"""Rate limits in requests and tokens per team: reserved when a request starts, settled when it
ends, and nothing charged for a request refused before it generated anything."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest
from fastapi import FastAPI

from tailor.stages.serve.limits import RateLimitedError, RateLimiter, TooLargeError
from tailor.stages.serve.spec import EndpointLimits

from .conftest import start_server

LONG = {"ignore_eos": True, "stop_at_block_end": False}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rates(rpm: int = 100, tpm: int = 100) -> dict[str, int]:
    return {"requests_per_minute": rpm, "tokens_per_minute": tpm}


def test_tokens_a_request_did_not_use_are_given_back() -> None:
    limiter = RateLimiter(Clock())
    first = limiter.reserve("acme", **rates(), tokens=80)
    with pytest.raises(RateLimitedError) as refused:
        limiter.reserve("acme", **rates(), tokens=30)
    limiter.settle(first, used=20)
    limiter.reserve("acme", **rates(), tokens=30)
    assert refused.value.limit == "tokens_per_minute"
    assert refused.value.retry_after_s == pytest.approx(6.0)  # 10 missing at 100 per minute


def test_a_refunded_request_costs_neither_a_request_nor_tokens() -> None:
    limiter = RateLimiter(Clock())
    held = limiter.reserve("acme", **rates(rpm=1), tokens=100)
    limiter.refund(held)
    limiter.reserve("acme", **rates(rpm=1), tokens=100)
    with pytest.raises(RateLimitedError) as refused:
        limiter.reserve("acme", **rates(rpm=1), tokens=1)
    assert refused.value.limit == "requests_per_minute"


def test_a_refusal_takes_nothing_from_the_other_bucket() -> None:
    limiter = RateLimiter(Clock())
    limiter.reserve("acme", **rates(rpm=2, tpm=100), tokens=60)
    with pytest.raises(RateLimitedError) as refused:
        limiter.reserve("acme", **rates(rpm=2, tpm=100), tokens=60)
    limiter.reserve("acme", **rates(rpm=2, tpm=100), tokens=10)  # the second request is left
    assert refused.value.limit == "tokens_per_minute"


def test_buckets_refill_over_the_minute_and_are_per_team() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limiter.reserve("acme", **rates(), tokens=100)
    limiter.reserve("beta", **rates(), tokens=100)
    clock.now += 30
    limiter.reserve("acme", **rates(), tokens=50)


def test_a_request_larger_than_a_minutes_tokens_is_refused_for_good() -> None:
    with pytest.raises(TooLargeError):
        RateLimiter(Clock()).reserve("acme", **rates(tpm=100), tokens=101)


# -- through HTTP ------------------------------------------------------------------------------


def post(url: str, token: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "py", "prompt": "x", **body},
        timeout=60,
    )


def test_requests_refused_as_invalid_cost_nothing(serve_app: Callable[..., FastAPI]) -> None:
    limits = EndpointLimits(requests_per_minute=2, max_tokens=64)
    live = start_server(serve_app(limits=limits))
    try:
        refused = [
            post(live.url, "tok-acme", max_tokens=500).status_code,  # over max_tokens
            post(live.url, "tok-acme", prompt="x = 1\n" * 400).status_code,  # over the context
            post(live.url, "tok-acme", model="missing").status_code,
        ]
        served = [post(live.url, "tok-acme", max_tokens=2).status_code for _ in range(2)]
    finally:
        live.stop()
    assert refused == [400, 400, 404]
    assert served == [200, 200]


def test_the_token_limit_refuses_with_429_naming_it(serve_app: Callable[..., FastAPI]) -> None:
    limits = EndpointLimits(requests_per_minute=100, tokens_per_minute=100, max_tokens=64)
    live = start_server(serve_app(limits=limits))
    try:
        first = post(live.url, "tok-acme", max_tokens=40, n=2, **LONG)
        second = post(live.url, "tok-acme", max_tokens=40, **LONG)
        other_team = post(live.url, "tok-beta", model="go", max_tokens=40, **LONG)
    finally:
        live.stop()
    assert first.status_code == 200 and first.json()["usage"]["completion_tokens"] == 80
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1
    problem = second.json()
    assert problem["type"] == "https://tailor.dev/problems/rate-limit-exceeded"
    assert problem["limit"] == "tokens_per_minute"
    assert "100 tokens per minute" in problem["detail"]
    assert other_team.status_code == 200


def test_a_request_no_minute_could_hold_is_a_400(serve_app: Callable[..., FastAPI]) -> None:
    limits = EndpointLimits(tokens_per_minute=50, max_tokens=64)
    live = start_server(serve_app(limits=limits))
    try:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="tok-acme", max_retries=0)
        with pytest.raises(openai.BadRequestError) as err:
            client.completions.create(model="py", prompt="x", max_tokens=30, n=2)
    finally:
        live.stop()
    assert err.value.code == "request_too_large"


def test_refusals_are_counted_per_team_and_limit(serve_app: Callable[..., FastAPI]) -> None:
    limits = EndpointLimits(requests_per_minute=1, max_tokens=64)
    live = start_server(serve_app(limits=limits))
    try:
        for _ in range(2):
            post(live.url, "tok-acme", max_tokens=2)
        metrics = httpx.get(f"{live.url}/metrics").text
    finally:
        live.stop()
    assert 'tailor_serve_refused_total{reason="requests_per_minute",team="acme"} 1.0' in metrics
