"""The language a completion is recorded under."""

from __future__ import annotations

import pytest

from tailor.telemetry.records import language_of


@pytest.mark.parametrize(
    ("language", "path", "expected"),
    [
        ("Python", "src/app.rs", "python"),  # the client's own name wins
        (None, "src/app/main.rs", "rust"),
        ("", "C:\\work\\ui\\view.tsx", "typescriptreact"),
        (None, "infra/main.tf", "tf"),  # an extension not in the table is kept as is
        (None, "Makefile", None),
        (None, None, None),
    ],
)
def test_the_language_is_the_clients_else_the_paths(
    language: str | None, path: str | None, expected: str | None
) -> None:
    assert language_of(language, path) == expected
