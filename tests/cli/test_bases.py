"""`tailor base build-tiny`: the embedded default's base, built and registered in one go."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tailor.cli.main import app as cli_app
from tailor.config import get_settings
from tailor.db.session import make_engine, session_factory
from tailor.services.base_models.service import find


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private embedded workspace for the CLI's settings."""
    monkeypatch.setenv("TAILOR_WORKSPACE", str(tmp_path / "ws"))
    get_settings.cache_clear()
    yield tmp_path / "ws"
    get_settings.cache_clear()


def _built(path: Path) -> Path:
    """A directory that already holds a model (build-tiny leaves it as it is)."""
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "gpt_bigcode"}')
    return path


def _entry(workspace: Path, name: str) -> tuple[str, str] | None:
    engine = make_engine(f"sqlite:///{workspace / 'tailor.db'}")
    session: Session
    with session_factory(engine)() as session:
        entry = find(session, name)
        return (entry.source, entry.family) if entry else None


def test_build_tiny_registers_what_it_built_once(workspace: Path, tmp_path: Path) -> None:
    model = _built(tmp_path / "tiny")
    for _ in range(2):  # the quickstart runs it on every start
        result = CliRunner().invoke(cli_app, ["base", "build-tiny", str(model)])
        assert result.exit_code == 0, result.output
    assert _entry(workspace, "tiny-starcoder") == (str(model), "gpt_bigcode")


def test_build_tiny_does_not_take_over_a_name_registered_elsewhere(
    workspace: Path, tmp_path: Path
) -> None:
    first, second = _built(tmp_path / "first"), _built(tmp_path / "second")
    CliRunner().invoke(cli_app, ["base", "build-tiny", str(first), "--name", "tiny"])
    result = CliRunner().invoke(cli_app, ["base", "build-tiny", str(second), "--name", "tiny"])
    assert result.exit_code == 1 and "registered already" in result.output
    assert _entry(workspace, "tiny") == (str(first), "gpt_bigcode")


def test_build_tiny_builds_through_the_cache_and_states_its_size(
    workspace: Path, tmp_path: Path
) -> None:
    args = ["base", "build-tiny", "--recipe", "tiny", "--steps", "2", "--no-register"]
    first = CliRunner().invoke(cli_app, [*args, str(tmp_path / "a")])
    second = CliRunner().invoke(cli_app, [*args, str(tmp_path / "b")])
    assert first.exit_code == second.exit_code == 0, first.output
    assert "parameters" in first.output
    assert len(list((workspace / "cache" / "bases").glob("tiny-base-*/model.safetensors"))) == 1
    for out in ("a", "b"):
        assert (tmp_path / out / "model.safetensors").is_file()


def test_build_tiny_refuses_an_unknown_recipe(workspace: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["base", "build-tiny", str(tmp_path / "m"), "--recipe", "huge"]
    )
    assert result.exit_code == 2 and "--recipe must be one of" in result.output
    assert not (tmp_path / "m").exists()
