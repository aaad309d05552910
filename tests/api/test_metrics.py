"""GET /metrics: Prometheus' series for whoever holds the metrics token, and no one else."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tailor.config import Settings
from tailor.security import may_scrape

TOKEN = "metrics-token-for-tests"


def test_prometheus_with_the_metrics_token_reads_the_series(
    client: TestClient, settings: Settings
) -> None:
    settings.metrics_token = SecretStr(TOKEN)

    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert answer.status_code == 200
    assert "tailor_api_requests" in answer.text


@pytest.mark.parametrize("sent", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_without_the_metrics_token_there_is_no_metrics_route(
    client: TestClient, settings: Settings, sent: str | None
) -> None:
    settings.metrics_token = SecretStr(TOKEN)

    answer = client.get("/metrics", headers={"Authorization": sent} if sent else {})

    assert answer.status_code == 404


def test_with_no_token_set_a_remote_caller_is_refused(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404  # TestClient's peer is not loopback


@pytest.mark.parametrize(
    ("host", "headers", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("::1", {}, True),
        ("10.0.0.7", {}, False),
        ("127.0.0.1", {"x-forwarded-for": "203.0.113.9"}, False),  # a proxy on this machine
        ("127.0.0.1", {"forwarded": "for=203.0.113.9"}, False),
        (None, {}, False),
    ],
)
def test_with_no_token_set_only_callers_on_this_machine_may_scrape(
    host: str | None, headers: dict[str, str], allowed: bool
) -> None:
    assert may_scrape(headers, host, None) is allowed
