"""The adapter beats its base as an IDE sees it: the team's held-out FIM tasks sent to the
gateway over HTTP (OpenAI /v1/completions, prompt + suffix, a team token, greedy), the base
by its name and the adapter by its endpoint's, for three training seeds.

The margin: edit similarity must rise by MARGIN (3 points) with the whole paired 95 %
bootstrap interval above zero, for every seed. Measured over HTTP on 30 tasks (2 shared
cores, default kernels): base 9.7 %, adapters 19.2 / 19.2 / 17.9 % for seeds 0 / 1 / 2,
deltas +9.4 / +9.5 / +8.2 points, interval lower ends +7.2 / +7.6 / +4.7 points; with
ATEN_CPU_CAPABILITY=avx2 (the kernels of another x86 CPU) +10.1 / +9.5 / +9.0, lower ends
+7.5 / +6.5 / +5.9. The
smallest delta is 2.7 times the margin, and the tiny base has never seen the team's house
style, so what the adapter learns (300 steps at 3e-3 with lm_head in it,
tests/evaluate/conftest.py: `train_lora`) is far from the near-ties where a CPU's other
kernels flip a greedy token (the failure the issue saw came from lr 1e-2, where both models
wrote noise). A served path that drops the adapter or swaps the FIM layout brings the two
models level and fails it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tailor.stages.evaluate.compare import Candidate, run_evaluation
from tailor.stages.evaluate.served import HttpCompletions
from tailor.stages.evaluate.spec import Comparison, EvalSpec
from tailor.stages.serve.app import create_serving_app
from tailor.stages.serve.callers import BASE_MODEL, lookup_from
from tailor.stages.serve.engine import TailorEngine
from tailor.storage import FileStore
from tests.serve.conftest import LiveServer, start_server

from .conftest import DATASET, TEAM, house_style_files, train_lora, write_dataset

TOKEN, BASE = "tok-ide", "tiny-base"
SEEDS = (0, 1, 2)
MARGIN = 0.03


def endpoint(seed: int) -> str:
    return f"house-style-{seed}"


def prefix(seed: int) -> str:
    return f"teams/{TEAM}/adapters/house-style/{seed + 1}"


@pytest.fixture(scope="module")
def store(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> FileStore:
    """The team's dataset and one adapter per seed, trained on its train split."""
    root = tmp_path_factory.mktemp("served-gain")
    store = FileStore(root / "objects")
    files = house_style_files(40, 10)
    write_dataset(store, TEAM, DATASET, files)
    train = [content for _, content, split in files if split == "train"]
    for seed in SEEDS:
        out = train_lora(tiny_base, train, root / f"adapter-{seed}", steps=300, lr=3e-3, seed=seed)
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            store.upload_file(out / name, f"{prefix(seed)}/{name}")
    return store


@pytest.fixture(scope="module")
def gateway(tiny_base: Path, store: FileStore) -> Iterator[LiveServer]:
    """A gateway serving the base under its name and each seed's adapter at its endpoint."""
    engine = TailorEngine(str(tiny_base), store).start()
    engine.wait_ready(120)
    models = {endpoint(s): prefix(s) for s in SEEDS} | {BASE: BASE_MODEL}
    lookup = lookup_from({TOKEN: TEAM}.get, lambda team, model: models.get(model))
    live = start_server(create_serving_app(engine, lookup=lookup, list_models=lambda t: [*models]))
    yield live
    live.stop()
    engine.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_the_adapter_beats_its_base_through_the_gateway(
    seed: int, store: FileStore, gateway: LiveServer
) -> None:
    spec = EvalSpec.model_validate(
        {
            "team": TEAM,
            "base_model": BASE,
            "dataset_id": DATASET,
            "adapter": prefix(seed),
            "fim": {"tasks": 30, "context_chars": 600, "max_new_tokens": 48},
            "humaneval": {"enabled": False},
        }
    )
    report = run_evaluation(
        spec,
        store,
        base=Candidate(HttpCompletions(gateway.url, TOKEN, BASE)),
        adapter=Candidate(HttpCompletions(gateway.url, TOKEN, endpoint(seed)), prefix(seed)),
    )
    row = report.row("fim.edit_similarity")
    assert isinstance(row, Comparison) and row.delta is not None and row.ci_low is not None
    measured = (row.base, row.adapter, row.delta, row.ci_low, row.ci_high)
    assert row.delta >= MARGIN, measured
    assert row.ci_low > 0.0, measured  # the whole 95 % interval favours the adapter
