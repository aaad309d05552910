"""Property-based API testing: no 5xx and no response that breaks the OpenAPI schema."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from sqlalchemy.orm import Session

from tests.conftest import Tenant


@pytest.fixture
def api_schema(app: FastAPI, tenant: Tenant, session: Session) -> schemathesis.BaseSchema:
    """The app's own OpenAPI document, loaded over ASGI.

    Text with NUL characters is refused by design (PostgreSQL cannot store it; see the API's
    description), so the generator does not produce it.
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(allow_x00=False)
    return schema


def test_the_api_never_errors_or_breaks_its_schema(
    api_schema: schemathesis.BaseSchema, tenant: Tenant
) -> None:
    headers = {**tenant.auth(), "Content-Type": "application/json"}
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            if "team" in case.path_parameters:
                case.path_parameters["team"] = tenant.slug
            case.call_and_validate(headers=headers)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
