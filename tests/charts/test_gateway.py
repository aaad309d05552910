"""The chart's inference gateway: rendered for both values files, and its pod run."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from tests.support.kubelet import Kubelet

from .conftest import CHART, Helm, by_kind

GATEWAY = "t-tailor-gateway"


def _named(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [m for m in by_kind(manifests, kind) if m["metadata"]["name"] == name]
    return found


def render_with(helm: Helm, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "t", str(CHART), "--namespace", "tailor"]
    for value in sets:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def _env(manifests: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    container = _named(manifests, "Deployment", deployment)["spec"]["template"]["spec"]
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in container["containers"][0]["env"]
    }


def test_ides_are_handed_the_gateways_ingress_url(
    production_manifests: list[dict[str, Any]],
) -> None:
    env = _env(production_manifests, "t-tailor-api")

    assert env["TAILOR_SERVE_URL"] == "https://code.tailor.corp.example.com"


def test_without_an_ingress_the_gateway_url_is_its_service(
    default_manifests: list[dict[str, Any]],
) -> None:
    env = _env(default_manifests, "t-tailor-api")

    assert env["TAILOR_SERVE_URL"] == f"http://{GATEWAY}.tailor.svc:80"


def test_a_gateway_under_the_apis_host_is_reached_at_its_path(helm: Helm) -> None:
    sets = ["ingress.enabled=true", "gateway.ingress.enabled=true", "gateway.ingress.path=/gw"]
    manifests = render_with(helm, *sets)

    rule = _named(manifests, "Ingress", GATEWAY)["spec"]["rules"][0]
    assert (rule["host"], rule["http"]["paths"][0]["path"]) == ("tailor.example.com", "/gw")
    assert _env(manifests, GATEWAY)["TAILOR_GATEWAY_PATH_PREFIX"] == "/gw"
    assert _env(manifests, "t-tailor-api")["TAILOR_SERVE_URL"] == "http://tailor.example.com/gw"


def test_the_production_gateway_scales_and_survives_drains(
    production_manifests: list[dict[str, Any]],
) -> None:
    hpa = _named(production_manifests, "HorizontalPodAutoscaler", GATEWAY)["spec"]
    pdb = _named(production_manifests, "PodDisruptionBudget", GATEWAY)["spec"]
    deployment = _named(production_manifests, "Deployment", GATEWAY)["spec"]

    assert (hpa["minReplicas"], hpa["maxReplicas"], pdb["minAvailable"]) == (3, 12, 2)
    assert "replicas" not in deployment  # the HPA owns it


def test_the_gateway_and_the_operator_share_the_endpoint_token_key(
    production_manifests: list[dict[str, Any]],
) -> None:
    gateway = _env(production_manifests, GATEWAY)["TAILOR_ENDPOINT_TOKEN_KEY"]
    operator = _env(production_manifests, "t-tailor-operator")["TAILOR_ENDPOINT_TOKEN_KEY"]

    assert gateway == operator
    assert gateway["secretKeyRef"] == {"name": "tailor-app-secrets", "key": "endpoint-token-key"}


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def production_secrets(
    database_url: str, app_keys: dict[str, str] | None = None
) -> dict[tuple[str, str], Any]:
    """The Secrets a production install points at (existingSecret values); `app_keys` are
    added to the app Secret's three required keys."""
    app = {"secret-key": "s" * 32, "operator-token": "o" * 32, "endpoint-token-key": "k" * 32}
    app.update(app_keys or {})
    s3 = {"TAILOR_S3_ACCESS_KEY_ID": "t", "TAILOR_S3_SECRET_ACCESS_KEY": "t"}
    return {
        ("Secret", "tailor-database"): _secret("tailor-database", {"database-url": database_url}),
        ("Secret", "tailor-app-secrets"): _secret("tailor-app-secrets", app),
        ("Secret", "tailor-s3-credentials"): _secret("tailor-s3-credentials", s3),
    }


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[Kubelet]:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    runner = Kubelet(
        tmp_path / "node", {"PATH": path, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    )
    yield runner
    runner.stop_all()


@pytest.mark.parametrize("db_engine", ["sqlite"], indirect=True)
def test_the_rendered_gateway_pod_starts_and_checks_tokens_in_the_database(
    production_manifests: list[dict[str, Any]], kubelet: Kubelet, db_engine: Engine
) -> None:
    objects = production_secrets(db_engine.url.render_as_string(False))
    pod = kubelet.run(_named(production_manifests, "Deployment", GATEWAY), objects)
    pod.wait_ready()

    answer = httpx.post(
        pod.url("http") + "/v1/completions",
        json={"model": "completion", "prompt": "x"},
        headers={"Authorization": "Bearer tlr_unknown"},
    )

    assert answer.status_code == 401


# What the worker, training and k8s extras bring and the API image (the gateway's) lacks.
_NOT_IN_THE_API_IMAGE = (
    "numpy", "hyperscan", "pyarrow", "xxhash", "datasketch", "detect_secrets", "celery",
    "redis", "torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers",
    "kubernetes", "kopf",
)  # fmt: skip
_START_WITHOUT = """
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not in the API image")
sys.meta_path.insert(0, Missing())
from tailor.config import Settings
from tailor.gateway import create_gateway
create_gateway(Settings(executor="kubernetes", endpoint_token_key="k", database_url={url!r}))
"""


@pytest.mark.parametrize("db_engine", ["sqlite"], indirect=True)
def test_the_cluster_gateway_needs_nothing_the_api_image_lacks(db_engine: Engine) -> None:
    url = db_engine.url.render_as_string(False)
    script = _START_WITHOUT.format(blocked=_NOT_IN_THE_API_IMAGE, url=url)

    started = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert started.returncode == 0, started.stderr[-2000:]
