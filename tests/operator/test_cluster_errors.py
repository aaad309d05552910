"""Failed Kubernetes API calls become kopf retries (what may heal) or give-ups (what will not)."""

from __future__ import annotations

import json

import kopf
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from tailor_operator.kubeapi import as_kopf_error


def _api_error(status: int, message: str = "boom") -> ApiException:
    return ApiException(status=status, reason="Reason", body=json.dumps({"message": message}))


@pytest.mark.parametrize("status", [409, 429, 500, 503])
def test_conflicts_throttling_and_server_errors_are_retried_later(status: int) -> None:
    error = as_kopf_error(_api_error(status), "applying Job ns/ft")

    assert isinstance(error, kopf.TemporaryError)
    assert error.delay is not None and error.delay > 0


def test_an_unreachable_api_server_is_retried() -> None:
    error = as_kopf_error(urllib3.exceptions.MaxRetryError(None, "/"), "applying Job ns/ft")

    assert isinstance(error, kopf.TemporaryError)
    assert "unreachable" in str(error)


def test_missing_rbac_is_retried_and_names_the_fix() -> None:
    error = as_kopf_error(_api_error(403, "jobs is forbidden"), "applying Job ns/ft")

    assert isinstance(error, kopf.TemporaryError)
    assert "RBAC" in str(error) and "jobs is forbidden" in str(error)


@pytest.mark.parametrize("status", [400, 422])
def test_a_manifest_the_api_server_rejects_is_not_retried(status: int) -> None:
    error = as_kopf_error(_api_error(status, "spec.template: Invalid value"), "applying Job ns/ft")

    assert isinstance(error, kopf.PermanentError)
    assert "spec.template: Invalid value" in str(error)
