"""The harness kubelet itself: a pod's env, files and command resolved as on a node."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.kubelet import Kubelet, PodFailed

CHECK = """
import os, pathlib, sys
env = os.environ
assert env["FROM_SECRET"] == "s3cret", env
assert env["FROM_CONFIGMAP"] == "blue", env
assert env["POD_NAMESPACE"] == "tailor-team-search", env
assert env["PREFIXED_colour"] == "blue", env
assert pathlib.Path(sys.argv[1]).read_text() == "blue", sys.argv
assert sys.argv[2] == "blue", sys.argv
assert "OPTIONAL_MISSING" not in env and "OPTIONAL_NO_KEY" not in env, env
"""


def _job(command: list[str]) -> dict[str, Any]:
    container = {
        "name": "main",
        "command": command,
        "env": [
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {
                "name": "FROM_CONFIGMAP",
                "valueFrom": {"configMapKeyRef": {"name": "c", "key": "colour"}},
            },
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            # Optional references to a missing Secret or key leave the variable unset.
            {
                "name": "OPTIONAL_MISSING",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
            },
            {
                "name": "OPTIONAL_NO_KEY",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "other", "optional": True}},
            },
        ],
        "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "PREFIXED_"}],
        "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf", "readOnly": True}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "check", "namespace": "tailor-team-search"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "conf", "configMap": {"name": "c"}}],
                }
            }
        },
    }


OBJECTS = {
    ("ConfigMap", "c"): {"data": {"colour": "blue"}},
    ("Secret", "s"): {"data": {"k": base64.b64encode(b"s3cret").decode()}},
}


@pytest.fixture
def kubelet(tmp_path: Path) -> Kubelet:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return Kubelet(tmp_path / "node", {"PATH": path})


def test_a_job_sees_its_env_mounted_files_and_expanded_args(kubelet: Kubelet) -> None:
    command = ["python", "-c", CHECK, "/etc/conf/colour", "$(FROM_CONFIGMAP)"]

    kubelet.run(_job(command), OBJECTS).wait_succeeded(60)


def test_a_job_that_exits_non_zero_fails(kubelet: Kubelet) -> None:
    pod = kubelet.run(_job(["python", "-c", "raise SystemExit(3)"]), OBJECTS)

    with pytest.raises(PodFailed, match="exited 3"):
        pod.wait_succeeded(60)


def test_a_command_the_image_does_not_have_fails(kubelet: Kubelet) -> None:
    with pytest.raises(PodFailed, match="not in the image"):
        kubelet.run(_job(["tailor-no-such-binary"]), OBJECTS)


def test_a_secret_the_namespace_does_not_have_fails(kubelet: Kubelet) -> None:
    objects = {k: v for k, v in OBJECTS.items() if k[0] != "Secret"}

    with pytest.raises(PodFailed, match="Secret 's' does not exist"):
        kubelet.run(_job(["python", "-c", "pass"]), objects)
