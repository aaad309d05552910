"""The validator the chart and builder tests rely on catches what an API server would reject."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.charts.validation import validate_manifest


def deployment(**spec: Any) -> dict[str, Any]:
    pod = {"containers": [{"name": "c", "image": "busybox"}]}
    base = {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": pod}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {**base, **spec},
    }


def test_a_valid_builtin_manifest_passes() -> None:
    validate_manifest(deployment(replicas=2))


def test_an_unknown_builtin_field_fails() -> None:
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        validate_manifest(deployment(replica=2))


def test_an_unknown_kind_fails() -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_manifest({"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {}})


def test_a_tailor_resource_is_checked_against_its_crd() -> None:
    team = {"apiVersion": "tailor.dev/v1alpha1", "kind": "Team", "metadata": {"name": "a"}}

    validate_manifest({**team, "spec": {"quota": {"gpus": 4}}})
    with pytest.raises(jsonschema.ValidationError, match="gpu"):
        validate_manifest({**team, "spec": {"quota": {"gpu": 4}}})


def test_a_kueue_resource_is_checked_against_kueue_schema() -> None:
    queue = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": {}}

    validate_manifest({**queue, "spec": {"clusterQueue": "tailor-a"}})
    with pytest.raises(jsonschema.ValidationError, match="clusterqueue"):
        validate_manifest({**queue, "spec": {"clusterqueue": "tailor-a"}})


def test_a_jobset_is_checked_against_the_jobset_schema() -> None:
    jobset = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {}}

    validate_manifest({**jobset, "spec": {"failurePolicy": {"maxRestarts": 2}}})
    with pytest.raises(jsonschema.ValidationError, match="maxRestart"):
        validate_manifest({**jobset, "spec": {"failurePolicy": {"maxRestart": 2}}})
