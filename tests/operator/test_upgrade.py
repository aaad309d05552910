"""`helm upgrade` loses nothing: every team's namespace, queues, jobs and endpoints survive.

The chart is rendered with the production values and applied to the kmock emulator as
Helm applies it: objects created on install, then the post-install hooks; on upgrade the
pre-upgrade hooks, every object patched (or created, or deleted when gone from the
chart), then the post-upgrade hooks — each hook deleted first and again after success as
its `hook-delete-policy` says. The test plays the kubelet for the teams' seed Job (its
command runs for real: the `tailor` CLI against the live API, with the env and the mounted
ConfigMap resolved from what the chart rendered) and the worker for the `tailor.team.sync`
tasks the API queues; kopf runs the operator with the chart's own operator config.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tailor_operator.config import OperatorConfig

from tailor.k8s import connect
from tailor.services.teams.sync import SYNC_TASK, sync_team
from tests.api.conftest import queued_tasks
from tests.charts.conftest import PRODUCTION, Helm, render
from tests.charts.conftest import helm as helm
from tests.operator.conftest import Kube, Platform, team_store_secret

pytestmark = pytest.mark.asyncio

VALUES_TEAMS = ["search", "payments", "platform-infra"]
API_TEAM = "growth"
HOOK = "helm.sh/hook"
DELETE_POLICY = "helm.sh/hook-delete-policy"
CLUSTER_SCOPED = {
    "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
    "ClusterQueue", "ResourceFlavor", "Team",
}  # fmt: skip
PLURALS = {"Ingress": "ingresses", "PodDisruptionBudget": "poddisruptionbudgets"}


@pytest.fixture
def chart(helm: Helm, tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The release as installed (production values) and as upgraded (a new image tag)."""
    newer = tmp_path / "upgrade.yaml"
    newer.write_text("image:\n  tag: 0.2.0\n")
    return render(helm, PRODUCTION), render(helm, PRODUCTION, newer)


@pytest.fixture
def operator_config(
    chart: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> OperatorConfig:
    """The operator reads the config the chart renders (two GPU pools, Kueue on)."""
    [configmap] = [c for c in chart[0] if "operator.json" in c.get("data", {})]
    return OperatorConfig.model_validate_json(configmap["data"]["operator.json"])


def _path(manifest: dict[str, Any], named: bool = True) -> str:
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    plural = PLURALS.get(kind, kind.lower() + "s")
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if kind not in CLUSTER_SCOPED:
        root += f"/namespaces/{manifest['metadata'].get('namespace', 'tailor')}"
    return f"{root}/{plural}/{manifest['metadata']['name']}" if named else f"{root}/{plural}"


def _serve_kinds(kube: Kube, manifests: list[dict[str, Any]]) -> None:
    """Teach the emulator the chart's kinds it does not serve yet (RBAC, Ingress, ...)."""
    import kmock

    for manifest in manifests:
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        key = f"{api_version}/{PLURALS.get(kind, kind.lower() + 's')}"
        if key not in kube.emulator.resources:
            kube.emulator.resources[key] = kmock.ResourceInfo(
                kind=kind,
                namespaced=kind not in CLUSTER_SCOPED,
                verbs={"list", "watch", "get", "create", "patch", "update", "delete"},
                subresources=set(),
            )


def _hooks(manifests: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    def annotations(m: dict[str, Any]) -> dict[str, str]:
        return m["metadata"].get("annotations") or {}

    hooks = [m for m in manifests if event in annotations(m).get(HOOK, "").split(",")]
    return sorted(
        hooks, key=lambda m: (int(annotations(m).get("helm.sh/hook-weight", 0)), m["kind"])
    )


def _is_hook(manifest: dict[str, Any]) -> bool:
    return HOOK in (manifest["metadata"].get("annotations") or {})


class Release:
    """Helm's install and upgrade, step by step, against the emulator."""

    def __init__(self, kube: Kube, platform: Platform, tmp: Path) -> None:
        self.kube, self.platform, self.tmp = kube, platform, tmp

    async def apply(self, manifest: dict[str, Any]) -> None:
        status, _ = await self.kube.request("POST", _path(manifest, named=False), manifest)
        if status == 409:
            body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
            await self.kube.patch(_path(manifest), body)
        else:
            assert status in (200, 201), (manifest["kind"], status)

    async def run_hooks(self, manifests: list[dict[str, Any]], event: str) -> None:
        for hook in _hooks(manifests, event):
            policy = (hook["metadata"].get("annotations") or {}).get(DELETE_POLICY, "")
            if "before-hook-creation" in policy and await self.kube.get(_path(hook)):
                await self.kube.delete(_path(hook))
            await self.kube.create(_path(hook, named=False), hook)
            if hook["kind"] == "Job" and "seed-teams" in hook["metadata"]["name"]:
                await self.run_job(hook, manifests)
            # Other hook Jobs (the migrations) are taken as succeeded: the fixture migrated.
            if "hook-succeeded" in policy:
                await self.kube.delete(_path(hook))

    async def install(self, manifests: list[dict[str, Any]]) -> None:
        for manifest in manifests:
            if not _is_hook(manifest):
                await self.apply(manifest)
        await self.run_hooks(manifests, "post-install")

    async def upgrade(self, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        await self.run_hooks(new, "pre-upgrade")
        kept = {_path(m) for m in new if not _is_hook(m)}
        for manifest in new:
            if not _is_hook(manifest):
                await self.apply(manifest)
        for manifest in old:
            if not _is_hook(manifest) and _path(manifest) not in kept:
                await self.kube.delete(_path(manifest))
        await self.run_hooks(new, "post-upgrade")

    async def run_job(self, job: dict[str, Any], manifests: list[dict[str, Any]]) -> None:
        """Play the kubelet: run the Job's container as a local process; it must exit 0."""
        pod = job["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = dict(os.environ, HOME=str(self.tmp))
        for var in container.get("env", []):
            env[var["name"]] = await self._env_value(var)
        # The Service's DNS name is the cluster's; here the API listens on a local port.
        env["TAILOR_URL"] = self.platform.api_url
        mounts = {
            m["mountPath"]: await self._materialise(pod, m, manifests)
            for m in container.get("volumeMounts", [])
        }
        argv = [
            _local(arg, mounts)
            for arg in [*container.get("command", []), *container.get("args", [])]
        ]
        argv[0] = str(Path(sys.executable).parent / argv[0])
        done = await asyncio.to_thread(
            subprocess.run, argv, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr

    async def _env_value(self, var: dict[str, Any]) -> str:
        if "value" in var:
            return str(var["value"])
        ref = var["valueFrom"]["secretKeyRef"]
        secret = await self.kube.get(f"/api/v1/namespaces/tailor/secrets/{ref['name']}")
        assert secret is not None, f"Secret {ref['name']} is missing"
        return base64.b64decode(secret["data"][ref["key"]]).decode()

    async def _materialise(
        self, pod: dict[str, Any], mount: dict[str, Any], manifests: list[dict[str, Any]]
    ) -> Path:
        local = self.tmp / "mounts" / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        if "configMap" in volume:
            name = volume["configMap"]["name"]
            configmap = await self.kube.get(f"/api/v1/namespaces/tailor/configmaps/{name}")
            assert configmap is not None, f"ConfigMap {name} is missing"
            for key, text in configmap["data"].items():
                (local / key).write_text(text)
        return local


def _local(arg: str, mounts: dict[str, Path]) -> str:
    """A path inside the container as the materialised file here."""
    for mount_path, local in mounts.items():
        if arg.startswith(mount_path + "/"):
            return str(local) + arg[len(mount_path) :]
    return arg


async def _admin_secrets(kube: Kube, platform: Platform) -> None:
    """What the production values name as existing Secrets, as the platform team made them."""
    encoded = base64.b64encode(platform.operator_token.encode()).decode()
    for name, data in (
        ("tailor-app-secrets", {"operator-token": encoded, "secret-key": encoded}),
        ("tailor-s3-credentials", {"TAILOR_S3_ACCESS_KEY_ID": "a2V5"}),
    ):
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}
        await kube.create("/api/v1/namespaces/tailor/secrets", body)
    for slug in [*VALUES_TEAMS, API_TEAM, "later"]:  # each team's own object-store keys
        await team_store_secret(kube, slug)


async def _run_syncs(platform: Platform) -> dict[str, str]:
    """Play the worker: run every queued `tailor.team.sync` task, oldest first."""
    done = {}
    for name, args in queued_tasks(platform.broker):
        if name == SYNC_TASK:
            slug = str(args[0])
            done[slug] = await asyncio.to_thread(sync_team, platform.sessions, slug, connect())
    platform.broker.delete("celery")
    return done


async def _team_state(kube: Kube, slug: str) -> dict[str, str]:
    """The uids of what a team has on the cluster (a re-created object has a new one)."""
    ns = f"tailor-team-{slug}"
    paths = {
        "team": f"/apis/tailor.dev/v1alpha1/teams/{slug}",
        "namespace": f"/api/v1/namespaces/{ns}",
        "localqueue": f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{ns}/localqueues/tailor",
        "clusterqueue": f"/apis/kueue.x-k8s.io/v1beta2/clusterqueues/tailor-{slug}",
        "job": f"/apis/batch/v1/namespaces/{ns}/jobs/train-1",
        "endpoint": f"/apis/apps/v1/namespaces/{ns}/deployments/serve-style",
    }
    state = {}
    for what, path in paths.items():
        obj = await kube.get(path)
        state[what] = obj["metadata"]["uid"] if obj else "absent"
    return state


async def _ready(kube: Kube, slug: str) -> None:
    def ready(team: dict[str, Any] | None) -> bool:
        return bool(team and (team.get("status") or {}).get("phase") == "Ready")

    await kube.wait_for(f"/apis/tailor.dev/v1alpha1/teams/{slug}", ready)


async def _running_work(kube: Kube, slug: str) -> None:
    """A training Job and an endpoint Deployment in the team namespace (what users run)."""
    ns = f"tailor-team-{slug}"
    labels = {"app.kubernetes.io/part-of": "tailor", "tailor.dev/team": slug}
    pod = {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train-1", "labels": labels},
        "spec": {"template": {"spec": pod}},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "serve-style", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {**pod, "restartPolicy": "Always"},
            },
        },
    }
    await kube.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job)
    await kube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment)


async def test_an_upgrade_keeps_every_teams_namespace_queues_jobs_and_endpoints(
    kube: Kube,
    platform: Platform,
    operator: None,
    kubeconfig: Any,
    chart: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    installed, upgraded = chart
    _serve_kinds(kube, installed + upgraded)
    await _admin_secrets(kube, platform)
    release = Release(kube, platform, tmp_path)

    # Install: the seed Job creates the values' teams through the API; a team lead adds one.
    await release.install(installed)
    admin = {"Authorization": f"Bearer {platform.admin_token}"}
    created = platform.client.post("/v1/teams", json={"slug": API_TEAM, "name": "G"}, headers=admin)
    assert created.status_code == 201, created.text
    assert await _run_syncs(platform) == {slug: "created" for slug in [*VALUES_TEAMS, API_TEAM]}
    teams = [*VALUES_TEAMS, API_TEAM]
    for slug in teams:
        await _ready(kube, slug)
        await _running_work(kube, slug)
    before = {slug: await _team_state(kube, slug) for slug in teams}
    assert all("absent" not in state.values() for state in before.values()), before

    # Upgrade exactly as Helm does; the seed Job runs again and changes nothing.
    await release.upgrade(installed, upgraded)
    assert await _run_syncs(platform) == {slug: "unchanged" for slug in VALUES_TEAMS}

    # A team made after the upgrade is Ready: the operator has caught up with every event.
    later = platform.client.post("/v1/teams", json={"slug": "later", "name": "L"}, headers=admin)
    assert later.status_code == 201, later.text
    assert await _run_syncs(platform) == {"later": "created"}
    await _ready(kube, "later")
    after = {slug: await _team_state(kube, slug) for slug in teams}
    assert after == before
    seeded = platform.client.get("/v1/teams/platform-infra", headers=admin).json()
    assert seeded["cluster_quota"]["gpu_type"] == "nvidia-h100-80gb"
    team = await kube.get("/apis/tailor.dev/v1alpha1/teams/platform-infra")
    assert team is not None and team["spec"]["quota"]["gpuType"] == "nvidia-h100-80gb"
    assert json.loads(json.dumps(team["spec"]["quota"]))["gpus"] == 8
