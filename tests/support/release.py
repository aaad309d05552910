"""A rendered Helm release, played pod by pod on the harness kubelet.

Every Deployment, StatefulSet, Job and Pod of the rendered manifests is found in them (no
list of workloads here) and run the way Helm and a cluster would: the release's objects
first, then its `post-install` hooks by weight (each Job must exit 0), then each
Deployment's and StatefulSet's readiness probe must answer, then the `helm test` pods.

What a node would pull is mapped to what this machine has, by image:
- Tailor's images (`tailor-*`) run this environment's executables (`tailor`, `celery`,
  `uvicorn`, `kopf` on the virtualenv's PATH); a command they do not have fails.
- `curl` (the `helm test` image) is the machine's curl, and the bundled `redis` image's
  `redis-server` the machine's: the same programs, run with the rendered args (the
  password the chart generated included, which every client must then send).
- The bundled `postgres` image is played by the machine's running PostgreSQL: its Service
  resolves there (what cluster DNS and a Service do for a pod), its readiness probe
  (`pg_isready`) is run against it, and the database is one of the test's own (the
  chart's `postgresql.database`). A managed Redis named by the values is the machine's.
- Any other image cannot run here and fails.

The API server is the kmock emulator: the in-cluster login needs TLS and a service-account
token it does not serve, so Tailor's images get its address (the operator's
TAILOR_OPERATOR_KUBE_SERVER, the worker's KUBECONFIG) as the node's environment.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from sqlalchemy import make_url, text

from tailor.db.session import make_engine
from tailor.storage import S3Store
from tests.charts.conftest import PRODUCTION
from tests.conftest import POSTGRES_URL
from tests.support.kubelet import Kubelet, Pod, PodFailed, free_port, run_exec

WORKLOADS = ("Deployment", "StatefulSet", "Job", "Pod")
HOOK = "helm.sh/hook"
NAMESPACE = "tailor"
# Images whose servers this machine runs: where their Services resolve.
PLAYED = {"postgres": "127.0.0.1:5432"}
# A managed Redis outside the release (the production values'): the machine's.
MACHINE_REDIS = "127.0.0.1:6379"
# Images whose programs this machine has.
MACHINE_TOOLS = {"curl", "redis"}
MACHINE_PATH = "/usr/local/bin:/usr/bin:/bin"
READY_TIMEOUT_S = 300.0
# Service names resolve in Tailor's (Python) pods through this directory's sitecustomize.
CLUSTERNET = Path(__file__).parent / "clusternet"


def repository(image: str) -> str:
    """`registry/mirror/ghcr.io/tailor-dev/tailor-api:0.1.0` -> `tailor-api`."""
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]


def fresh_database() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL; dropped afterwards."""
    name = f"tailor_pods_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def database_url(name: str) -> str:
    """The URL of database `name` on the machine's PostgreSQL."""
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def release_values(
    tmp: Path,
    production: bool,
    database: str,
    s3_store: S3Store,
    s3_endpoint: str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """What the test sets on top of a values file: its bucket behind moto's S3 server and,
    with the bundled PostgreSQL, its own database (the machine's superuser owns it); then
    `extra` values."""
    store: dict[str, Any] = {"url": s3_store.url.rstrip("/"), "endpointUrl": s3_endpoint}
    values: dict[str, Any] = {"objectStore": store, **(extra or {})}
    if not production:
        store.update(accessKeyId="test", secretAccessKey="test")
        user = make_url(POSTGRES_URL).username or "postgres"
        values["postgresql"] = {"username": user, "database": database}
    path = tmp / f"test-values-{'production' if production else 'defaults'}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _secret(name: str, data: Mapping[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    meta = {"name": name, "namespace": NAMESPACE}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": encoded}


def admin_secrets(database: str, operator_token: str = "") -> list[dict[str, Any]]:
    """The Secrets the production values name as existing, as a platform team makes them."""
    values = yaml.safe_load(PRODUCTION.read_text())
    token = operator_token or uuid.uuid4().hex
    return [
        _secret(values["database"]["existingSecret"], {"database-url": database_url(database)}),
        _secret(
            values["secrets"]["existingSecret"],
            {
                "secret-key": uuid.uuid4().hex,
                "operator-token": token,
                "endpoint-token-key": uuid.uuid4().hex,
                "job-token-key": uuid.uuid4().hex,
                "metrics-token": uuid.uuid4().hex,
            },
        ),
        _secret(
            values["objectStore"]["existingSecret"],
            {"TAILOR_S3_ACCESS_KEY_ID": "test", "TAILOR_S3_SECRET_ACCESS_KEY": "test"},
        ),
    ]


def external_services(manifests: list[dict[str, Any]]) -> dict[str, str]:
    """Services outside the release the rendered env names (the production values' managed
    Redis): the platform's own, played by the machine's."""
    found = {}
    for manifest in manifests:
        for _, spec in _pod_specs([manifest]):
            for container in spec["containers"]:
                for var in container.get("env") or []:
                    url = urlsplit(str(var.get("value", "")))
                    if url.scheme == "redis" and url.port and ".svc" in (url.hostname or ""):
                        found[f"{url.hostname}:{url.port}"] = MACHINE_REDIS
    return found


def _pod_specs(manifests: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec) of every workload."""
    found = []
    for m in manifests:
        if m["kind"] == "Pod":
            found.append((m, m["spec"]))
        elif m["kind"] in WORKLOADS:
            found.append((m, m["spec"]["template"]["spec"]))
    return found


def _labels(workload: Mapping[str, Any]) -> Mapping[str, str]:
    if workload["kind"] == "Pod":
        return workload["metadata"].get("labels") or {}
    return (workload["spec"]["template"].get("metadata") or {}).get("labels") or {}


def _hook_events(workload: Mapping[str, Any]) -> list[str]:
    annotations = workload["metadata"].get("annotations") or {}
    return [e for e in annotations.get(HOOK, "").split(",") if e]


def _weight(workload: Mapping[str, Any]) -> int:
    annotations = workload["metadata"].get("annotations") or {}
    return int(annotations.get("helm.sh/hook-weight", 0))


class Release:
    """The release's workloads on a harness kubelet, with the release's ConfigMaps and
    Secrets as the API server would serve them to it."""

    def __init__(
        self, manifests: list[dict[str, Any]], root: Path, kube_url: str, kubeconfig: Path
    ) -> None:
        self.manifests = manifests
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.add_objects([m for m in manifests if m["kind"] in ("ConfigMap", "Secret")])
        self.kubelet = Kubelet(root, {}, images=self.image_env)
        python_path = [str(CLUSTERNET), *filter(None, [os.environ.get("PYTHONPATH")])]
        self.tailor_env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), MACHINE_PATH]),
            "PYTHONPATH": os.pathsep.join(python_path),
            "HARNESS_CLUSTER_DNS": str(self.kubelet.dns_table),
            "KUBECONFIG": str(kubeconfig),
            "TAILOR_OPERATOR_KUBE_SERVER": kube_url,
        }
        # Each workload's container ports get their local port before anything starts.
        self.ports = {
            m["metadata"]["name"]: {
                str(p["containerPort"]): free_port()
                for p in spec["containers"][0].get("ports") or []
            }
            for m, spec in _pod_specs(manifests)
        }
        self.kubelet.dns.update(self._cluster_dns())
        self.kubelet.dns.update(external_services(manifests))

    def api_objects(self) -> list[dict[str, Any]]:
        """The release's ConfigMaps and Secrets as an API server stores them (a Secret's
        `stringData` merged into its base64 `data`)."""
        stored = []
        for obj in self.objects.values():
            if obj["kind"] == "Secret" and obj.get("stringData"):
                encoded = {
                    k: base64.b64encode(v.encode()).decode() for k, v in obj["stringData"].items()
                }
                obj = {**{k: v for k, v in obj.items() if k != "stringData"},
                       "data": {**(obj.get("data") or {}), **encoded}}  # fmt: skip
            stored.append(obj)
        return stored

    def add_objects(self, objects: list[dict[str, Any]]) -> None:
        """ConfigMaps and Secrets the pods may read (the platform team's included)."""
        for obj in objects:
            self.objects[(obj["kind"], obj["metadata"]["name"])] = obj

    def image_env(self, image: str) -> Mapping[str, str]:
        """The environment an image gives its processes here; PodFailed if it cannot run."""
        name = repository(image)
        if name.startswith("tailor-"):
            return self.tailor_env
        if name in MACHINE_TOOLS or name in PLAYED:
            return {"PATH": MACHINE_PATH}
        raise PodFailed(f"image {image!r} cannot run here: no local program stands for it")

    def _played(self, workload: Mapping[str, Any]) -> str | None:
        [(_, spec)] = _pod_specs([dict(workload)])
        return PLAYED.get(repository(spec["containers"][0]["image"]))

    def _cluster_dns(self) -> dict[str, str]:
        """Every Service's DNS names and ports -> where its pods listen here."""
        dns = {}
        for service in (m for m in self.manifests if m["kind"] == "Service"):
            dns.update(self._service_dns(service, _pod_specs(self.manifests)))
        return dns

    def _service_dns(
        self, service: Mapping[str, Any], workloads: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> dict[str, str]:
        """A Service's DNS names and ports -> where the one of `workloads` it selects listens."""
        dns = {}
        name = service["metadata"]["name"]
        namespace = service["metadata"].get("namespace", NAMESPACE)
        selector = service["spec"].get("selector") or {}
        targets = [
            (w, s) for w, s in workloads if selector and selector.items() <= _labels(w).items()
        ]
        for port in service["spec"]["ports"]:
            for workload, spec in targets:
                local = self._target(workload, spec, port)
                for host in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                             f"{name}.{namespace}.svc.cluster.local"):  # fmt: skip
                    dns[f"{host}:{port['port']}"] = local
        return dns

    def _target(
        self, workload: Mapping[str, Any], spec: Mapping[str, Any], port: Mapping[str, Any]
    ) -> str:
        played = self._played(workload)
        if played:
            return played
        target = str(port.get("targetPort", port["port"]))
        for declared in spec["containers"][0].get("ports") or []:
            if target in (declared.get("name"), str(declared["containerPort"])):
                number = self.ports[workload["metadata"]["name"]][str(declared["containerPort"])]
                return f"127.0.0.1:{number}"
        raise PodFailed(f"Service port {port} selects no container port")

    def serve(
        self,
        workload: Mapping[str, Any],
        services: list[dict[str, Any]],
        objects: Mapping[tuple[str, str], Mapping[str, Any]],
    ) -> Pod:
        """Start a workload made after install (the operator's) with `objects` as its
        namespace's; `services` selecting it resolve to it from then on."""
        [(_, spec)] = _pod_specs([dict(workload)])
        name = workload["metadata"]["name"]
        self.ports[name] = {
            str(p["containerPort"]): free_port() for p in spec["containers"][0].get("ports") or []
        }
        for service in services:
            self.kubelet.dns.update(self._service_dns(service, [(dict(workload), spec)]))
        return self.kubelet.run(workload, objects, local_ports=self.ports[name])

    def start(self, workload: Mapping[str, Any]) -> Pod:
        """Start a workload's pod on the kubelet."""
        name = workload["metadata"]["name"]
        return self.kubelet.run(workload, self.objects, local_ports=self.ports.get(name))

    def run_job(self, workload: Mapping[str, Any]) -> None:
        """A Job's (or bare Pod's) container must exit 0."""
        self.start(workload).wait_succeeded()

    def check_played(self, workload: Mapping[str, Any]) -> None:
        """A workload the machine plays: its readiness probe answers against the machine."""
        spec = workload["spec"]["template"]
        container = spec["spec"]["containers"][0]
        pod = {"metadata": {"name": workload["metadata"]["name"]}, "spec": spec["spec"]}
        env = self.kubelet.environment(pod, container, self.objects)
        probe = container.get("readinessProbe")
        if probe is None or "exec" not in probe:
            raise PodFailed(f"{workload['metadata']['name']} has no exec readiness probe")
        if not run_exec(probe, list(probe["exec"]["command"]), env, self.kubelet.root):
            raise PodFailed(f"{workload['metadata']['name']}: readiness probe failed")

    async def run_all(self) -> list[str]:
        """Install as Helm does, playing the kubelet; the names of the workloads that ran."""
        workloads = [m for m in self.manifests if m["kind"] in WORKLOADS]
        ran: list[str] = []
        started: list[tuple[Mapping[str, Any], Pod]] = []
        for workload in (w for w in workloads if not _hook_events(w)):
            if self._played(workload):
                await asyncio.to_thread(self.check_played, workload)
                ran.append(workload["metadata"]["name"])
            else:
                started.append((workload, self.start(workload)))
        for event in ("post-install", "test"):
            if event == "test":
                await self._wait(started, ran)
            hooks = [w for w in workloads if event in _hook_events(w)]
            for hook in sorted(hooks, key=_weight):
                await asyncio.to_thread(self.run_job, hook)
                ran.append(hook["metadata"]["name"])
        return ran

    async def _wait(self, started: list[tuple[Mapping[str, Any], Pod]], ran: list[str]) -> None:
        for workload, pod in started:
            if workload["kind"] in ("Job", "Pod"):
                await asyncio.to_thread(pod.wait_succeeded)
            else:
                if "readinessProbe" not in pod.spec["containers"][0]:
                    raise PodFailed(f"{workload['metadata']['name']} has no readiness probe")
                await asyncio.to_thread(pod.wait_ready, READY_TIMEOUT_S)
                # A liveness probe that fails on a ready pod would restart it forever.
                live = pod.spec["containers"][0].get("livenessProbe") is None or pod.probe(
                    "livenessProbe"
                )
                if not live:
                    raise PodFailed(f"{workload['metadata']['name']}: liveness probe failed")
            ran.append(workload["metadata"]["name"])

    def stop(self) -> None:
        """Stop every pod (SIGTERM, then SIGKILL)."""
        self.kubelet.stop_all()
