"""The served path against the evaluation: the endpoint's completions over HTTP must agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tailor.fim import FimStyle
from tailor.stages.evaluate.compare import Candidate
from tailor.stages.evaluate.served import (
    AgreementReport,
    HttpCompletions,
    ServedError,
    check_served,
)
from tailor.stages.evaluate.spec import EvalSpec
from tailor.stages.serve.app import create_serving_app
from tailor.stages.serve.callers import BASE_MODEL, lookup_from
from tailor.stages.serve.engine import TailorEngine
from tailor.storage import FileStore
from tests.serve.conftest import LiveServer, start_server

from .conftest import ADAPTER_PREFIX, DATASET, TEAM, house_style_files, train_lora, write_dataset

TOKEN, ENDPOINT = "tok-ide", "house-style"
# The tiny base's own FIM tokens in the wrong order (suffix first): a layout bug at serving.
SWAPPED = FimStyle("swapped", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", order="suffix_first")


@pytest.fixture(scope="module")
def store(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> FileStore:
    """The team's dataset and an adapter trained on it briefly (enough to change completions)."""
    root = tmp_path_factory.mktemp("served")
    store = FileStore(root / "objects")
    files = house_style_files(40, 10)
    write_dataset(store, TEAM, DATASET, files)
    train = [content for _, content, split in files if split == "train"]
    adapter_dir = train_lora(tiny_base, train, root / "adapter", steps=60, lr=3e-3)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        store.upload_file(adapter_dir / name, f"{ADAPTER_PREFIX}/{name}")
    return store


def _engine(tiny_base: Path, store: FileStore, style: FimStyle | None = None) -> TailorEngine:
    engine = TailorEngine(str(tiny_base), store, fim_style=style).start()
    engine.wait_ready(120)
    return engine


@pytest.fixture(scope="module")
def engine(tiny_base: Path, store: FileStore) -> Iterator[TailorEngine]:
    """The evaluation's engine, which also serves the correct endpoint."""
    engine = _engine(tiny_base, store)
    yield engine
    engine.close()


def _serve(engine: TailorEngine, adapter: str) -> LiveServer:
    """A gateway where TOKEN is the team's and ENDPOINT names `adapter`."""
    lookup = lookup_from({TOKEN: TEAM}.get, lambda team, model: adapter)
    return start_server(create_serving_app(engine, lookup=lookup, list_models=lambda t: [ENDPOINT]))


def _check(
    engine: TailorEngine, store: FileStore, server: LiveServer, token: str = TOKEN
) -> AgreementReport:
    spec = EvalSpec.model_validate(
        {
            "team": TEAM,
            "base_model": "tiny-base",
            "dataset_id": DATASET,
            "adapter": ADAPTER_PREFIX,
            "fim": {"tasks": 9, "context_chars": 400, "max_new_tokens": 24},
            "humaneval": {"enabled": False},
        }
    )
    return check_served(
        spec,
        store,
        evaluated=Candidate(engine, ADAPTER_PREFIX),
        served=Candidate(HttpCompletions(server.url, token, ENDPOINT)),
        endpoint=ENDPOINT,
    )


@pytest.mark.slow
def test_the_endpoint_serving_the_evaluated_adapter_agrees(
    engine: TailorEngine, store: FileStore
) -> None:
    server = _serve(engine, ADAPTER_PREFIX)
    try:
        report = _check(engine, store, server)
    finally:
        server.stop()
    assert report.agreed, report.reason
    assert report.identical == report.tasks == 9


@pytest.mark.slow
def test_an_endpoint_with_a_wrong_fim_layout_fails_the_check_and_says_why(
    tiny_base: Path, engine: TailorEngine, store: FileStore
) -> None:
    wrong = _engine(tiny_base, store, SWAPPED)
    server = _serve(wrong, ADAPTER_PREFIX)
    try:
        report = _check(engine, store, server)
    finally:
        server.stop()
        wrong.close()
    assert not report.agreed
    assert report.reason is not None and "wrong FIM layout" in report.reason
    assert report.disagreements


@pytest.mark.slow
def test_an_endpoint_serving_the_base_without_the_adapter_fails_the_check(
    engine: TailorEngine, store: FileStore
) -> None:
    server = _serve(engine, BASE_MODEL)
    try:
        report = _check(engine, store, server)
    finally:
        server.stop()
    assert not report.agreed
    assert report.reason is not None and "adapter not applied" in report.reason


def test_a_refused_token_is_an_error_naming_the_endpoint(
    engine: TailorEngine, store: FileStore
) -> None:
    server = _serve(engine, ADAPTER_PREFIX)
    try:
        with pytest.raises(ServedError, match=r"house-style.*401"):
            _check(engine, store, server, token="tok-wrong")
    finally:
        server.stop()
