"""InferenceEndpoint → ConfigMap, Deployment, Service, HPA: pure builders, no cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from tailor_operator import serving
from tailor_operator.config import ObjectStore, OperatorConfig
from tailor_operator.resources import InferenceEndpointSpec

from tests.charts.validation import validate_manifest
from tests.operator.conftest import NAMESPACE, endpoint_spec


def make_endpoint(name: str = "search-code", **spec: Any) -> serving.Endpoint:
    parsed = InferenceEndpointSpec.model_validate(endpoint_spec(**spec))
    return serving.Endpoint(name, NAMESPACE, "uid-2", parsed)


VLLM = {"backend": "vllm", "resources": {"gpus": 1}}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_every_manifest_validates_against_kubernetes_1_31(
    operator_config: OperatorConfig,
) -> None:
    for ep in (make_endpoint(), make_endpoint(autoscaling={"enabled": True}, **VLLM)):
        for manifest in serving.build_serving(ep, operator_config):
            validate_manifest(manifest)


def test_the_tailor_engine_reads_the_endpoint_spec_and_is_ready_after_loading(
    operator_config: OperatorConfig,
) -> None:
    ep = make_endpoint()

    deployment = serving.build_deployment(ep, operator_config)
    configmap = serving.build_configmap(ep)

    container = _container(deployment)
    command = ["tailor", "serve-endpoint", "--config", "/config/endpoint.json"]
    assert container["command"][:4] == command
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    written = json.loads(configmap["data"]["endpoint.json"])
    assert written["adapters"][0]["prefix"] == "teams/search/adapters/search-style/1/"
    assert "autoscaling" not in written  # the engine gets the EndpointSpec only
    assert deployment["spec"]["replicas"] == 2


def test_vllm_serves_the_base_with_lora_and_pulls_adapters_first(
    operator_config: OperatorConfig,
) -> None:
    deployment = serving.build_deployment(make_endpoint(**VLLM), operator_config)

    pod = deployment["spec"]["template"]["spec"]
    args = _container(deployment)["args"]
    assert "--enable-lora" in args
    assert args[args.index("--max-loras") + 1] == "8"
    assert args[args.index("--lora-modules") + 1] == "search-style=/adapters/search-style"
    fetch = pod["initContainers"][0]["command"][2]
    assert (
        "aws s3 sync --endpoint-url http://minio.tailor.svc:9000 "
        "s3://tailor-artifacts/prod/teams/search/adapters/search-style/1/ "
        "/adapters/search-style"
    ) in fetch
    assert _container(deployment)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}


def test_vllm_needs_an_s3_object_store(operator_config: OperatorConfig) -> None:
    config = operator_config.model_copy(update={"objectStore": ObjectStore(url="file:///data")})

    with pytest.raises(serving.UnsupportedEndpoint, match="S3"):
        serving.build_deployment(make_endpoint(**VLLM), config)


def test_vllm_without_gpus_is_rejected() -> None:
    with pytest.raises(ValidationError, match="gpus >= 1"):
        InferenceEndpointSpec.model_validate(endpoint_spec(backend="vllm"))


PROMOTED = [{"name": "search-style", "version": "2", "prefix": "teams/search/adapters/s/2/"}]


def _template_hash(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["metadata"]["annotations"]["tailor.dev/spec-hash"]


def test_promotion_on_the_tailor_engine_changes_the_configmap_not_the_pods(
    operator_config: OperatorConfig,
) -> None:
    before, after = make_endpoint(), make_endpoint(adapters=PROMOTED)

    assert _template_hash(serving.build_deployment(before, operator_config)) == _template_hash(
        serving.build_deployment(after, operator_config)
    )
    promoted = json.loads(serving.build_configmap(after)["data"]["endpoint.json"])
    assert promoted["adapters"][0]["version"] == "2"


def test_a_new_base_model_rolls_tailor_engine_pods(operator_config: OperatorConfig) -> None:
    before = serving.build_deployment(make_endpoint(), operator_config)
    after = serving.build_deployment(make_endpoint(base_model="s3://b/other"), operator_config)

    assert _template_hash(before) != _template_hash(after)


def test_the_tailor_engine_pod_gets_the_gateway_token_from_a_secret(
    operator_config: OperatorConfig,
) -> None:
    env = _container(serving.build_deployment(make_endpoint(), operator_config))["env"]

    token = next(e for e in env if e["name"] == "TAILOR_SERVE_ENDPOINT_TOKEN")
    ref = token["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "tailor-endpoint-token", "key": "TAILOR_SERVE_ENDPOINT_TOKEN"}


def test_vllm_answers_only_the_gateways_token(operator_config: OperatorConfig) -> None:
    endpoint = make_endpoint(**VLLM)
    env = _container(serving.build_deployment(endpoint, operator_config))["env"]

    key = next(e for e in env if e["name"] == "VLLM_API_KEY")
    ref = key["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "tailor-endpoint-token", "key": "TAILOR_SERVE_ENDPOINT_TOKEN"}


def test_promotion_on_vllm_changes_the_pod_template_so_pods_roll(
    operator_config: OperatorConfig,
) -> None:
    promoted = PROMOTED

    before = serving.build_deployment(make_endpoint(**VLLM), operator_config)
    after = serving.build_deployment(make_endpoint(adapters=promoted, **VLLM), operator_config)
    again = serving.build_deployment(make_endpoint(**VLLM), operator_config)

    hashes = [_template_hash(d) for d in (before, after, again)]
    assert hashes[0] != hashes[1]
    assert hashes[0] == hashes[2]
    assert before["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_autoscaling_hands_the_replica_count_to_an_hpa(operator_config: OperatorConfig) -> None:
    ep = make_endpoint(autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 6})

    manifests = serving.build_serving(ep, operator_config)

    kinds = [m["kind"] for m in manifests]
    assert kinds == ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"]
    assert "replicas" not in manifests[1]["spec"]
    hpa = manifests[3]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)


def test_the_service_selects_the_endpoint_pods(operator_config: OperatorConfig) -> None:
    ep = make_endpoint()

    service = serving.build_service(ep)
    deployment = serving.build_deployment(ep, operator_config)

    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
