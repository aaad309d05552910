"""The evaluation job's tests use the evaluation tests' team dataset and tiny base."""

from tests.evaluate.conftest import team_store, tiny_base  # noqa: F401
