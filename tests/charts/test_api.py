"""The rendered API pod, run as a node would run it: what Prometheus reads of it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.kubelet import Kubelet

from .test_gateway import _named, production_secrets
from .test_gateway import kubelet as kubelet

API = "t-tailor-api"
METRICS_TOKEN = "m" * 32


@pytest.mark.parametrize("db_engine", ["sqlite"], indirect=True)
def test_prometheus_reads_the_api_metrics_with_the_secrets_token_and_no_one_else_does(
    production_manifests: list[dict[str, object]], kubelet: Kubelet, db_engine: Engine
) -> None:
    database = db_engine.url.render_as_string(False)
    objects = production_secrets(database, {"metrics-token": METRICS_TOKEN})
    pod = kubelet.run(_named(production_manifests, "Deployment", API), objects)
    pod.wait_ready()
    url = pod.url("http") + "/metrics"

    held = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    without = httpx.get(url)

    assert held.status_code == 200 and "tailor_api_requests" in held.text
    assert without.status_code == 404
