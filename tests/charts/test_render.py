"""`helm lint` and `helm template` with the real helm; everything rendered validates."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.utils import parse_quantity
from tailor_operator.config import OperatorConfig
from tailor_operator.crds import generate_crds

from tailor.config import Settings
from tailor.services.teams.schemas import ChartTeam
from tests.charts.conftest import CHART, PRODUCTION, Helm, by_kind, pod_specs, render
from tests.charts.validation import validate_manifest


@pytest.mark.parametrize("values", [[], [PRODUCTION]], ids=["defaults", "production"])
def test_helm_lint_passes_strictly(helm: Helm, values: list[Path]) -> None:
    args = ["lint", "--strict", str(CHART), "--namespace", "tailor"]
    for path in values:
        args += ["--values", str(path)]

    result = helm(*args)

    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("fixture", ["default_manifests", "production_manifests"])
def test_every_rendered_manifest_validates_against_kubernetes_1_31(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[dict[str, Any]] = request.getfixturevalue(fixture)

    for manifest in manifests:
        validate_manifest(manifest)


def test_the_chart_crds_are_the_generated_ones(default_manifests: list[dict[str, Any]]) -> None:
    rendered = {
        c["metadata"]["name"]: c for c in by_kind(default_manifests, "CustomResourceDefinition")
    }

    for crd in generate_crds():
        chart_crd = rendered[crd["metadata"]["name"]]
        assert chart_crd["spec"] == crd["spec"]
        assert chart_crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_crds_can_be_left_to_the_admin(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("crds:\n  install: false\n")

    assert by_kind(render(helm, values), "CustomResourceDefinition") == []


def test_an_unknown_value_is_rejected_by_the_schema(helm: Helm) -> None:
    result = helm("template", "t", str(CHART), "--set", "api.replicaz=3", check=False)

    assert result.returncode != 0
    assert "replicaz" in result.stderr


def test_every_pod_is_non_root_read_only_and_without_capabilities(
    production_manifests: list[dict[str, Any]], default_manifests: list[dict[str, Any]]
) -> None:
    for name, spec in pod_specs(default_manifests + production_manifests):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "requests" in container["resources"], name


def test_every_pod_requests_the_local_disk_its_volumes_may_fill(
    production_manifests: list[dict[str, Any]], default_manifests: list[dict[str, Any]]
) -> None:
    # Unrequested disk is what the kubelet evicts first under pressure, and the scheduler
    # places a pod only where its request fits: scratch volumes must be in the request.
    for name, spec in pod_specs(default_manifests + production_manifests):
        requested = [
            parse_quantity(c["resources"]["requests"]["ephemeral-storage"])
            for c in spec["containers"]
        ]
        scratch = sum(
            parse_quantity(v["emptyDir"].get("sizeLimit", 0))
            for v in spec.get("volumes") or []
            if "emptyDir" in v
        )
        assert sum(requested) >= scratch, name


def test_every_object_carries_the_helper_labels(
    default_manifests: list[dict[str, Any]],
) -> None:
    for manifest in default_manifests:
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "tailor", manifest["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == "t", manifest["metadata"]["name"]


def test_helm_test_checks_the_api_readiness(default_manifests: list[dict[str, Any]]) -> None:
    [pod] = by_kind(default_manifests, "Pod")

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["args"] == ["http://t-tailor-api.tailor.svc:80/readyz"]


def test_the_operator_config_is_one_the_operator_reads(
    production_manifests: list[dict[str, Any]],
) -> None:
    [configmap] = [
        c for c in by_kind(production_manifests, "ConfigMap") if "operator.json" in c["data"]
    ]

    config = OperatorConfig.model_validate_json(configmap["data"]["operator.json"])

    assert set(config.gpuTypes) == {"nvidia-a100-80gb", "nvidia-h100-80gb"}
    assert config.objectStore.teamCredentials == "secret"  # each team's own, from the admin
    assert config.teamEgress.enabled
    assert config.teamEgress.apiPodLabels["app.kubernetes.io/instance"] == "t"
    assert "tailor-s3-credentials" not in configmap["data"]["operator.json"]
    assert config.images.trainer.startswith("registry.corp.example.com/mirror/")
    assert config.apiUrl == "http://t-tailor-api.tailor.svc:80"


def _operator_rules(manifests: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    [role] = [r for r in by_kind(manifests, "ClusterRole") if r["metadata"]["name"] == name]
    return list(role["rules"])


def test_the_operator_cannot_read_the_platform_object_store_keys(
    production_manifests: list[dict[str, Any]],
) -> None:
    rules = [
        rule
        for name in ("t-tailor-operator", "t-tailor-operator-team")
        for rule in _operator_rules(production_manifests, name)
        if "secrets" in rule["resources"]
    ]

    readable = [r for r in rules if {"get", "list", "watch"} & set(r["verbs"])]
    assert readable and all(
        set(r["resourceNames"]) == {"tailor-object-store", "tailor-endpoint-token"}
        for r in readable
    )
    assert not [r for r in by_kind(production_manifests, "Role") if "operator" in str(r)]


def test_the_operator_writes_workloads_only_where_a_team_binding_lets_it(
    production_manifests: list[dict[str, Any]],
) -> None:
    cluster_wide = _operator_rules(production_manifests, "t-tailor-operator")
    writes = {"create", "patch", "update", "delete"}
    workloads = {"jobs", "jobsets", "deployments", "configmaps", "services", "secrets"}

    anywhere = [
        r for r in cluster_wide if workloads & set(r["resources"]) and writes & set(r["verbs"])
    ]
    [bind] = [r for r in cluster_wide if "bind" in r["verbs"]]
    bound = {b["roleRef"]["name"] for b in by_kind(production_manifests, "ClusterRoleBinding")}
    config = json.loads(
        next(
            m for m in by_kind(production_manifests, "ConfigMap")
            if "operator.json" in m.get("data", {})
        )["data"]["operator.json"]
    )  # fmt: skip

    assert anywhere == []
    assert bind["resourceNames"] == ["t-tailor-operator-team"]
    assert "t-tailor-operator-team" not in bound  # granted per team namespace only
    assert config["teamAccess"]["clusterRole"] == "t-tailor-operator-team"
    assert config["teamAccess"]["serviceAccount"] == "t-tailor-operator"


def test_production_teams_are_seeded_through_the_api_by_a_job(
    production_manifests: list[dict[str, Any]],
) -> None:
    [job] = [
        j for j in by_kind(production_manifests, "Job") if "seed-teams" in j["metadata"]["name"]
    ]
    [configmap] = [
        c for c in by_kind(production_manifests, "ConfigMap") if "teams.json" in c["data"]
    ]

    assert by_kind(production_manifests, "Team") == []
    teams = [ChartTeam.model_validate(t) for t in json.loads(configmap["data"]["teams.json"])]
    assert [t.name for t in teams] == ["search", "payments", "platform-infra"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["tailor", "admin", "seed-teams", "/seed/teams.json"]


@pytest.mark.parametrize("fixture", ["default_manifests", "production_manifests"])
def test_only_jobs_and_test_pods_are_hooks_helm_deletes(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[dict[str, Any]] = request.getfixturevalue(fixture)

    deleted_by_helm = {
        m["kind"]
        for m in manifests
        if "helm.sh/hook-delete-policy" in (m["metadata"].get("annotations") or {})
    }

    assert deleted_by_helm <= {"Job", "Pod"}


def test_each_gpu_pool_gets_a_kueue_flavor_and_the_shared_pool_lends(
    production_manifests: list[dict[str, Any]],
) -> None:
    flavors = {f["metadata"]["name"]: f for f in by_kind(production_manifests, "ResourceFlavor")}
    [pool] = by_kind(production_manifests, "Cohort")

    assert set(flavors) == {"a100-80gb", "h100-80gb"}
    assert flavors["a100-80gb"]["spec"]["nodeLabels"] == {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"
    }
    assert {f["apiVersion"] for f in flavors.values()} == {"kueue.x-k8s.io/v1beta2"}
    assert pool["apiVersion"] == "kueue.x-k8s.io/v1beta2"
    assert pool["metadata"]["name"] == "tailor"  # the teams' ClusterQueues' cohortName
    assert not by_kind(production_manifests, "ClusterQueue")  # the Cohort lends itself
    gpu = pool["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2]
    assert gpu == {"name": "nvidia.com/gpu", "nominalQuota": 16}


def test_workload_priority_classes_put_serving_above_training_above_evaluation(
    production_manifests: list[dict[str, Any]],
) -> None:
    classes = {
        c["metadata"]["name"]: c["value"]
        for c in by_kind(production_manifests, "WorkloadPriorityClass")
    }
    config = json.loads(
        next(
            m for m in by_kind(production_manifests, "ConfigMap")
            if "operator.json" in m.get("data", {})
        )["data"]["operator.json"]
    )  # fmt: skip

    assert classes["tailor-serving"] > classes["tailor-training"] > classes["tailor-evaluation"]
    assert config["kueue"]["trainingPriorityClass"] == "tailor-training"
    assert config["kueue"]["servingPriorityClass"] == "tailor-serving"


def test_external_services_replace_the_in_release_ones(
    production_manifests: list[dict[str, Any]],
) -> None:
    names = {m["metadata"]["name"] for m in production_manifests}
    [api] = [
        d
        for d in by_kind(production_manifests, "Deployment")
        if d["metadata"]["name"] == "t-tailor-api"
    ]

    assert not {"t-tailor-postgresql", "t-tailor-redis"} & names
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TAILOR_BROKER_URL"]["value"] == "redis://tailor-redis.databases.svc:6379/0"
    assert env["TAILOR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "tailor-database"


def test_an_external_database_needs_its_url(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"postgresql": {"enabled": False}}))

    result = helm("template", "t", str(CHART), "--values", str(values), check=False)

    assert result.returncode != 0
    assert "database.url" in result.stderr


def test_the_operator_has_no_wildcards_and_the_api_only_custom_resources(
    default_manifests: list[dict[str, Any]],
) -> None:
    roles = {r["metadata"]["name"]: r for r in by_kind(default_manifests, "ClusterRole")}

    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    for component in ("api", "worker"):
        groups = {g for rule in roles[f"t-tailor-{component}"]["rules"] for g in rule["apiGroups"]}
        assert groups == {"tailor.dev"}
    secret_rules = [r for r in roles["t-tailor-operator"]["rules"] if "secrets" in r["resources"]]
    assert all(set(r["verbs"]) <= {"create"} or r.get("resourceNames") for r in secret_rules)


def test_the_packaged_chart_leaves_out_the_test_values(helm: Helm, tmp_path: Path) -> None:
    helm("package", str(CHART), "--destination", str(tmp_path))
    [archive] = tmp_path.glob("tailor-*.tgz")

    with tarfile.open(archive) as packaged:
        names = packaged.getnames()
    assert "tailor/values.schema.json" in names
    assert "tailor/files/crds/finetunejobs.tailor.dev.yaml" in names
    assert not [n for n in names if n.startswith("tailor/ci/")]


def _operator_token_ref(manifests: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    deployments = by_kind(manifests, "Deployment")
    [workload] = [d for d in deployments if d["metadata"]["name"] == deployment]
    env = {e["name"]: e for e in workload["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref: dict[str, Any] = env["TAILOR_OPERATOR_TOKEN"]["valueFrom"]["secretKeyRef"]
    return ref


def test_the_api_and_the_operator_share_one_operator_token(
    default_manifests: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = _operator_token_ref(default_manifests, "t-tailor-api")
    operator = _operator_token_ref(default_manifests, "t-tailor-operator")

    assert api == operator
    secrets = by_kind(default_manifests, "Secret")
    [secret] = [s for s in secrets if s["metadata"]["name"] == api["name"]]
    assert secret["data"][api["key"]]  # generated once, kept across upgrades
    # The variable the chart sets is the one the API's settings read.
    monkeypatch.setenv("TAILOR_OPERATOR_TOKEN", "from-the-secret")
    token = Settings(workspace=tmp_path).operator_token
    assert token is not None and token.get_secret_value() == "from-the-secret"


def test_an_existing_secret_gives_both_the_operator_token(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"secrets": {"existingSecret": "platform-secrets"}}))

    manifests = render(helm, values)

    for deployment in ("t-tailor-api", "t-tailor-operator"):
        ref = _operator_token_ref(manifests, deployment)
        assert ref == {"name": "platform-secrets", "key": "operator-token"}


@pytest.mark.parametrize("name", ["a", "team-", "x" * 41])
def test_a_team_name_the_api_would_refuse_fails_at_render_time(
    helm: Helm, tmp_path: Path, name: str
) -> None:
    # Otherwise the seed Job would fail after the install, leaving the release half done.
    values = tmp_path / "teams.yaml"
    values.write_text(yaml.safe_dump({"teams": [{"name": name}]}))

    result = helm("template", "t", str(CHART), "--values", str(values), check=False)

    assert result.returncode != 0 and "name" in result.stderr


@pytest.mark.parametrize("fixture", ["default_manifests", "production_manifests"])
def test_worker_processes_match_their_cpus_and_fan_out_harvests(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[dict[str, Any]] = request.getfixturevalue(fixture)
    [worker] = [
        d for d in by_kind(manifests, "Deployment") if d["metadata"]["name"].endswith("-worker")
    ]
    container = worker["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    concurrency = command[command.index("--concurrency") + 1]
    # A harvest part runs in one process on one core: a process per requested CPU.
    assert container["resources"]["requests"]["cpu"] == concurrency
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert Settings(harvest_fanout_min_repos=int(env["TAILOR_HARVEST_FANOUT_MIN_REPOS"]))


def _pod_templates(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pod the chart renders (metadata and spec), from workloads and bare pods."""
    pods = [m for m in manifests if m["kind"] == "Pod"]
    workloads = ("Deployment", "StatefulSet", "Job")
    return pods + [m["spec"]["template"] for m in manifests if m["kind"] in workloads]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize(
    ("service", "env"), [("postgresql", "TAILOR_DATABASE_URL"), ("redis", "TAILOR_BROKER_URL")]
)
def test_the_bundled_database_and_broker_admit_only_the_releases_own_pods(
    service: str, env: str, default_manifests: list[dict[str, Any]]
) -> None:
    (policy,) = [
        p
        for p in by_kind(default_manifests, "NetworkPolicy")
        if p["metadata"]["name"].endswith(service)
    ]
    pods = _pod_templates(default_manifests)
    server = [p for p in pods if p["metadata"]["labels"]["app.kubernetes.io/component"] == service]
    clients = [
        p
        for p in pods
        if any(e["name"] == env for c in p["spec"]["containers"] for e in c.get("env", []))
    ]

    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}  # no namespaceSelector: this namespace only
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], server[0]["metadata"]["labels"])
    assert clients and all(
        _matches(source["podSelector"]["matchLabels"], p["metadata"]["labels"]) for p in clients
    )
