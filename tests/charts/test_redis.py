"""The bundled Redis, run as rendered (the machine's redis-server with the chart's args and
the password the chart generated): the broker carries task arguments, so only the
release's own processes, which are given the password, may use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.charts.conftest import by_kind
from tests.support.kubelet import resolve
from tests.support.release import Release


def _named(manifests: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [d for d in by_kind(manifests, "Deployment") if d["metadata"]["name"] == name]
    return found


def _broker_url(release: Release, workload: dict[str, Any]) -> str:
    """The worker's TAILOR_BROKER_URL as its pod sees it: `$(VAR)` expanded, DNS resolved."""
    pod = {"metadata": {"name": "worker-0"}, "spec": workload["spec"]["template"]["spec"]}
    env = release.kubelet.environment(pod, pod["spec"]["containers"][0], release.objects)
    return resolve(env["TAILOR_BROKER_URL"], release.kubelet.dns)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def test_the_bundled_redis_refuses_a_client_without_the_releases_password(
    default_manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    release = Release(default_manifests, tmp_path / "node", "http://unused", tmp_path / "kube")
    broker = _broker_url(release, _named(default_manifests, "t-tailor-worker"))
    try:
        release.start(_named(default_manifests, "t-tailor-redis")).wait_ready(60)
        assert redis.Redis.from_url(broker).ping()  # the release's own client is let in

        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(_without_password(broker)).ping()
    finally:
        release.stop()
