"""A kubelet for tests: run a rendered pod's containers as local processes.

What a pod runs is resolved the way a kubelet would: the container's command and args, its
env from literal values, ConfigMaps, Secrets and the downward API, `envFrom`, and its
ConfigMap, Secret and emptyDir volumes materialised as directories. A local process cannot
mount, so every mount path in the command, args and env is rewritten to its directory, and
each container port is given a free local port (its number rewritten the same way): that is
what a pod's own filesystem and network namespace give it on a node. The executable must be
on the image's PATH: a command the image does not have fails here, as it would on a node.

It is the start of the "every pod is run" harness: Deployments (readiness probe answers) and
Jobs (exit 0) of the chart and the operator go through `Kubelet.run`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (kind, name) -> manifest, for the pod's namespace: what the API server would hand the kubelet.
Objects = Mapping[tuple[str, str], Mapping[str, Any]]


class PodFailed(AssertionError):
    """The pod could not be started, exited, or never became ready."""


def free_port() -> int:
    """A port nothing listens on now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _object(objects: Objects, kind: str, name: str) -> Mapping[str, Any]:
    found = objects.get((kind, name))
    if found is None:
        raise PodFailed(f"{kind} {name!r} does not exist: the pod cannot start")
    return found


def _data(objects: Objects, kind: str, name: str) -> dict[str, str]:
    """A ConfigMap's or Secret's data as text (a Secret's is base64 on the API)."""
    obj = _object(objects, kind, name)
    if kind == "Secret":
        decoded = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return {**decoded, **(obj.get("stringData") or {})}
    return dict(obj.get("data") or {})


def _field_ref(pod: Mapping[str, Any], path: str) -> str:
    meta = pod.get("metadata") or {}
    known = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": "harness-node",
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in known:
        raise PodFailed(f"downward API field {path!r} is not supported by the harness")
    return str(known[path])


@dataclass
class Pod:
    """One running pod: its main container's process, mounts and ports."""

    name: str
    spec: Mapping[str, Any]
    root: Path
    mounts: dict[str, Path]
    ports: dict[str, int]  # container port (number or name) -> local port
    process: subprocess.Popen[bytes]
    log: Path
    volumes: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    dns: Mapping[str, str] = field(default_factory=dict)

    def output(self) -> str:
        """What the container wrote (stdout and stderr)."""
        return self.log.read_text(errors="replace")

    def url(self, port: int | str) -> str:
        """The local URL of a container port."""
        return f"http://127.0.0.1:{self.ports[str(port)]}"

    def probe(self, kind: str = "readinessProbe") -> bool:
        """One run of the container's probe (httpGet or tcpSocket)."""
        probe = self.spec["containers"][0].get(kind)
        if probe is None:
            raise PodFailed(f"the container has no {kind}")
        if "httpGet" in probe:
            get = probe["httpGet"]
            try:
                with urllib.request.urlopen(self.url(get["port"]) + get["path"], timeout=5) as r:
                    return 200 <= r.status < 400
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False
        if "tcpSocket" in probe:
            with socket.socket() as sock:
                return (
                    sock.connect_ex(("127.0.0.1", self.ports[str(probe["tcpSocket"]["port"])])) == 0
                )
        if "exec" in probe:
            local = _localiser(self.mounts, self.ports, self.dns)
            argv = [local(w) for w in probe["exec"]["command"]]
            return run_exec(probe, argv, self.env, self.root)
        raise PodFailed(f"{kind} kind not supported by the harness: {sorted(probe)}")

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Probe until ready, as the kubelet does; fail if the container exits or never is."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PodFailed(
                    f"pod {self.name} exited {self.process.returncode}:\n{self.output()[-4000:]}"
                )
            if self.probe():
                return
            time.sleep(0.2)
        raise PodFailed(f"pod {self.name} never became ready:\n{self.output()[-4000:]}")

    def wait_succeeded(self, timeout_s: float = 600.0) -> None:
        """A Job's pod: the container must exit 0."""
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise PodFailed(f"pod {self.name} still running:\n{self.output()[-4000:]}") from exc
        if code != 0:
            raise PodFailed(f"pod {self.name} exited {code}:\n{self.output()[-4000:]}")

    def sync_volumes(self, objects: Objects) -> None:
        """Rewrite the ConfigMap and Secret volumes from `objects` (the kubelet's periodic
        sync after an object changed), each file replaced atomically."""
        for volume in self.spec.get("volumes") or []:
            if volume["name"] in self.volumes:
                _materialise(volume, self.volumes[volume["name"]], objects, self.dns)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period (as on pod deletion)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_exec(
    probe: Mapping[str, Any],
    argv: list[str],
    env: Mapping[str, str],
    cwd: Path,
    stdout: Path | None = None,
) -> bool:
    """An exec probe (or `kubectl exec`): the command, run with the container's env, exits 0
    within its timeout; its output goes to `stdout` when given.

    The timeout is at least 30 s: the probe's own (1 s by default) is sized for a node, not
    for a test machine shared by many runs.
    """
    executable = shutil.which(argv[0], path=env.get("PATH"))
    if executable is None:
        raise PodFailed(f"probe command {argv[0]!r} is not in the image")
    timeout = max(30, int(probe.get("timeoutSeconds", 1)))
    try:
        done = subprocess.run(
            [executable, *argv[1:]], env=dict(env), cwd=cwd, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False
    if stdout is not None:
        stdout.write_bytes(done.stdout + done.stderr)
    return done.returncode == 0


def resolve(text: str, dns: Mapping[str, str]) -> str:
    """Service addresses (`host:port`, any of a Service's DNS names) as where they listen
    here: what the cluster's DNS and Service routing do for a pod."""
    if not dns:
        return text
    names = "|".join(re.escape(k) for k in sorted(dns, key=len, reverse=True))
    return re.sub(rf"(?<![\w.-])({names})(?!\d)", lambda m: dns[m.group(1)], text)


def _localiser(
    mounts: Mapping[str, Path], ports: Mapping[str, int], dns: Mapping[str, str]
) -> Callable[[str], str]:
    """Rewrites a word of the container: a mount path as its directory, a container port
    (alone or in a local URL) as its local port, a Service address as where it listens."""
    numbers = {k: str(v) for k, v in ports.items() if k.isdigit()}

    def local(value: str) -> str:
        if value in numbers:
            return numbers[value]
        value = resolve(value, dns)
        for number, port in numbers.items():
            # `--liveness=http://0.0.0.0:8080/healthz`: the pod's own address and port.
            value = re.sub(
                rf"(?<=//)(0\.0\.0\.0|127\.0\.0\.1|localhost):{number}(?!\d)",
                rf"\g<1>:{port}",
                value,
            )
        # Longest mount first: /cache/home is under /cache.
        for mount in sorted(mounts, key=len, reverse=True):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(mounts[mount]) + value[len(mount.rstrip("/")) :]
        return value

    return local


def _materialise(
    volume: Mapping[str, Any], target: Path, objects: Objects, dns: Mapping[str, str]
) -> None:
    if "configMap" in volume:
        data = _data(objects, "ConfigMap", volume["configMap"]["name"])
    elif "secret" in volume:
        data = _data(objects, "Secret", volume["secret"]["secretName"])
    else:
        return
    target.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        tmp = target / f".{key}.tmp"
        tmp.write_text(resolve(value, dns))
        os.replace(tmp, target / key)


@dataclass
class Kubelet:
    """Runs pod templates under `root` with `image_env` (the image's PATH and the like).

    `images`, when set, gives each image its own env instead (and raises PodFailed for an
    image that cannot run here); `dns` maps Service addresses (`host:port`) to local ones.
    """

    root: Path
    image_env: Mapping[str, str]
    pods: list[Pod] = field(default_factory=list)
    images: Callable[[str], Mapping[str, str]] | None = None
    dns: dict[str, str] = field(default_factory=dict)

    @property
    def dns_table(self) -> Path:
        """The file Python pods resolve Service names with (tests/support/clusternet)."""
        return self.root / "cluster-dns.json"

    def publish_dns(self) -> None:
        """Write `dns` where running pods read it (atomically: they read at each lookup)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.dns_table.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.dns))
        os.replace(tmp, self.dns_table)

    def run(
        self,
        workload: Mapping[str, Any],
        objects: Objects,
        name: str = "",
        local_ports: Mapping[str, int] | None = None,
    ) -> Pod:
        """Start the main container of a Deployment's, StatefulSet's or Job's pod template,
        or of a bare Pod (`helm test`); `local_ports` picks the local port of container ports
        (a Service pointing at them is known before the pod starts)."""
        template = workload if workload.get("kind") == "Pod" else workload["spec"]["template"]
        meta = workload.get("metadata") or {}
        pod_name = name or f"{meta.get('name', 'pod')}-0"
        pod = {
            "metadata": {
                **(template.get("metadata") or {}),
                "name": pod_name,
                "namespace": meta.get("namespace", "default"),
                "uid": f"uid-{pod_name}",
            },
            "spec": template["spec"],
        }
        spec = template["spec"]
        self.publish_dns()
        root = self.root / pod_name
        root.mkdir(parents=True, exist_ok=True)
        volumes: dict[str, Path] = {}
        for volume in spec.get("volumes") or []:
            path = root / "volumes" / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            _materialise(volume, path, objects, self.dns)
            volumes[volume["name"]] = path
        for init in spec.get("initContainers") or []:
            proc, log, _ = self._start(pod, init, volumes, {}, objects, root)
            if proc.wait() != 0:
                raise PodFailed(f"init container {init['name']} failed:\n{log.read_text()}")
        container = spec["containers"][0]
        ports: dict[str, int] = {}
        for port in container.get("ports") or []:
            local = (local_ports or {}).get(str(port["containerPort"])) or free_port()
            ports[str(port["containerPort"])] = local
            if "name" in port:
                ports[port["name"]] = local
        proc, log, env = self._start(pod, container, volumes, ports, objects, root)
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts") or []}
        started = Pod(pod_name, spec, root, mounts, ports, proc, log, volumes, env, self.dns)
        self.pods.append(started)
        return started

    def stop_all(self) -> None:
        """Stop every pod this kubelet started."""
        for pod in self.pods:
            pod.stop()

    def _start(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        volumes: dict[str, Path],
        ports: dict[str, int],
        objects: Objects,
        root: Path,
    ) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts") or []}
        local = _localiser(mounts, ports, self.dns)
        image = self._image(container)
        own = self._own_env(pod, container, objects)
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        argv = [local(_expand(w, {**image, **own})) for w in words]
        if not argv:
            raise PodFailed(f"container {container['name']} has no command (image entrypoint)")
        # The image's env is this machine's already; only the pod's own is rewritten.
        env = {**image, **{k: local(v) for k, v in own.items()}}
        executable = shutil.which(argv[0], path=env.get("PATH"))
        if executable is None:
            raise PodFailed(f"container {container['name']}: {argv[0]!r} is not in the image")
        log = root / f"{container['name']}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [executable, *argv[1:]], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root
            )
        return proc, log, env

    def environment(
        self, pod: Mapping[str, Any], container: Mapping[str, Any], objects: Objects
    ) -> dict[str, str]:
        """The image's env, then the container's own (mount paths not yet rewritten)."""
        return {**self._image(container), **self._own_env(pod, container, objects)}

    def _image(self, container: Mapping[str, Any]) -> Mapping[str, str]:
        return self.images(container.get("image", "")) if self.images else self.image_env

    @staticmethod
    def _own_env(
        pod: Mapping[str, Any], container: Mapping[str, Any], objects: Objects
    ) -> dict[str, str]:
        """What the pod sets: its hostname and the container's env."""
        env = {"HOSTNAME": str((pod.get("metadata") or {}).get("name", ""))}
        env.update(_env(pod, container, objects))
        return env


def _expand(word: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` references in command and args (`$$` escapes)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        word,
    )


def _env(pod: Mapping[str, Any], container: Mapping[str, Any], objects: Objects) -> dict[str, str]:
    """The container's environment: envFrom first, then env (which wins), as Kubernetes does."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            data = _data(objects, "Secret", source["secretRef"]["name"])
        else:
            data = _data(objects, "ConfigMap", source["configMapRef"]["name"])
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        if "value" in var:
            # `$(VAR)` names a variable defined before this one (envFrom's included).
            env[var["name"]] = _expand(str(var["value"]), env)
            continue
        ref = var.get("valueFrom") or {}
        if "secretKeyRef" in ref or "configMapKeyRef" in ref:
            kind, key_ref = (
                ("Secret", ref["secretKeyRef"])
                if "secretKeyRef" in ref
                else ("ConfigMap", ref["configMapKeyRef"])
            )
            optional = bool(key_ref.get("optional"))
            if optional and (kind, key_ref["name"]) not in objects:
                continue  # an optional reference to a missing object leaves the variable unset
            data, key = _data(objects, kind, key_ref["name"]), key_ref["key"]
            if optional and key not in data:
                continue
        elif "fieldRef" in ref:
            env[var["name"]] = _field_ref(pod, ref["fieldRef"]["fieldPath"])
            continue
        else:
            raise PodFailed(f"env {var['name']}: source not supported by the harness: {ref}")
        if key not in data:
            raise PodFailed(f"env {var['name']}: key {key!r} is not in its object")
        env[var["name"]] = data[key]
    return env
