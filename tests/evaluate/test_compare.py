"""Base vs adapter on the same tasks in one run, scored side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from tailor.stages.evaluate.compare import Candidate, EvaluationError, run_evaluation
from tailor.stages.evaluate.entrypoint import evaluate
from tailor.stages.evaluate.fim_tasks import FimTask, load_holdout, make_fim_tasks
from tailor.stages.evaluate.humaneval import load_problems
from tailor.stages.evaluate.render import render_comparison, render_examples
from tailor.stages.evaluate.spec import EvalReport, EvalSpec, GatePolicy, check_gate
from tailor.stages.serve.generation import Generation, GenerationRequest
from tailor.storage import FileStore

from .conftest import ADAPTER_PREFIX, DATASET, TEAM, house_style_files, train_lora, write_dataset


def _spec(base_source: str, **extra: object) -> EvalSpec:
    """The spec as the worker runs it: the catalog's base name, resolved to its files."""
    fim = {"tasks": 30, "context_chars": 600, "max_new_tokens": 48, "loss_documents": 10}
    fields = {"team": TEAM, "base_model": "tiny-base", "dataset_id": DATASET, "fim": fim}
    return EvalSpec.model_validate(fields | {"base_source": base_source, **extra})


class Oracle:
    """A Generator that knows the answer to every FIM task (a perfect model)."""

    def __init__(self, tasks: list[FimTask]) -> None:
        self.answers = {(t.prefix, t.suffix): t.middle for t in tasks}

    def generate(self, request: GenerationRequest) -> list[Generation]:
        middle = self.answers[(request.prompt, request.suffix or "")]
        return [Generation(text=middle, finish_reason="stop", completion_tokens=1, prompt_tokens=1)]


class Blank:
    """A Generator that never writes anything."""

    def generate(self, request: GenerationRequest) -> list[Generation]:
        return [Generation(text="", finish_reason="stop", completion_tokens=0, prompt_tokens=1)]


def test_a_better_model_wins_on_every_fim_metric_with_a_tight_interval(
    team_store: FileStore,
) -> None:
    spec = _spec("unused", adapter=ADAPTER_PREFIX, humaneval={"enabled": False})
    docs = load_holdout(team_store, TEAM, DATASET)
    tasks = make_fim_tasks(docs, 30, spec.fim.cuts, seed=spec.seed, context=spec.fim.context_chars)
    report = run_evaluation(
        spec, team_store, base=Candidate(Blank()), adapter=Candidate(Oracle(tasks), ADAPTER_PREFIX)
    )
    em = report.row("fim.exact_match")
    assert em is not None
    assert (em.base, em.adapter, em.n) == (0.0, 1.0, 30)
    assert em.ci_low == em.ci_high == 1.0
    assert report.adapter is not None
    assert report.adapter.fim["edit_similarity"].value == 1.0
    assert report.fim_tasks_by_cut == {"span": 10, "line": 10, "block": 10}
    assert check_gate(report, GatePolicy(require_eval_loss=False)).passed  # no model: no loss


class Canonical:
    """Writes each HumanEval problem's canonical solution, and nothing for FIM tasks."""

    def __init__(self) -> None:
        self.solutions = {p.prompt: p.canonical_solution for p in load_problems(subset=2)}

    def generate(self, request: GenerationRequest) -> list[Generation]:
        text = "" if request.suffix is not None else self.solutions[request.prompt]
        return [
            Generation(text=text, finish_reason="stop", completion_tokens=1, prompt_tokens=1)
        ] * request.n


def test_pass_at_10_is_reported_when_ten_samples_are_drawn(team_store: FileStore) -> None:
    humaneval = {"subset": 2, "n_samples": 10, "temperature": 0.8, "k": [1, 10, 100]}
    spec = _spec("unused", adapter=ADAPTER_PREFIX, humaneval=humaneval)
    report = run_evaluation(
        spec, team_store, base=Candidate(Canonical()), adapter=Candidate(Canonical(), "a")
    )
    assert report.base.humaneval.keys() == {"pass@1", "pass@10"}
    assert report.base.humaneval["pass@10"].value == 1.0
    assert report.base.sandbox_outcomes == {"passed": 20}
    assert [r.metric for r in report.comparison if r.metric.startswith("humaneval")] == [
        "humaneval.pass@1",
        "humaneval.pass@10",
    ]


def test_progress_is_reported_up_to_completion(team_store: FileStore) -> None:
    seen: list[float] = []
    spec = _spec("unused", humaneval={"enabled": True, "subset": 2})
    run_evaluation(spec, team_store, base=Candidate(Blank()), progress=lambda f, _m: seen.append(f))
    assert seen == sorted(seen)
    assert seen[-1] == 1.0


def test_an_adapter_candidate_without_an_adapter_in_the_spec_is_refused(
    team_store: FileStore,
) -> None:
    with pytest.raises(EvaluationError, match="adapter"):
        run_evaluation(
            _spec("unused"), team_store, base=Candidate(Blank()), adapter=Candidate(Blank(), "x")
        )


def test_a_base_only_evaluation_renders_its_scores(team_store: FileStore) -> None:
    spec = _spec("unused", humaneval={"enabled": False})
    report = run_evaluation(spec, team_store, base=Candidate(Blank()))
    console = Console(record=True, width=120)
    console.print(render_comparison(report))
    assert "fim.exact_match" in console.export_text()
    assert report.adapter is None and report.comparison == []


# --- the tiny model, through the serving engine --------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> FileStore:
    """A store with the team's dataset and an adapter trained on its train split."""
    root = tmp_path_factory.mktemp("trained")
    store = FileStore(root / "objects")
    files = house_style_files(40, 10)
    write_dataset(store, TEAM, DATASET, files)
    train = [content for _, content, split in files if split == "train"]
    # At lr 1e-2 the loss stalls near 3.3 within 80 steps and both models' completions are
    # noise, so which one "wins" flipped with the CPU's kernels; at 3e-3 it keeps falling (1.4
    # at step 300) and the adapter's gain is several times the margin on both dispatch paths.
    adapter_dir = train_lora(tiny_base, train, root / "adapter", steps=300, lr=3e-3)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        store.upload_file(adapter_dir / name, f"{ADAPTER_PREFIX}/{name}")
    return store


@pytest.fixture(scope="module")
def tiny_report(tiny_base: Path, trained: FileStore) -> EvalReport:
    humaneval = {"subset": 2, "max_new_tokens": 48}
    spec = _spec(str(tiny_base), adapter=ADAPTER_PREFIX, humaneval=humaneval)
    return evaluate(spec, trained)


@pytest.mark.slow
def test_the_adapter_scores_higher_on_the_teams_held_out_code(tiny_report: EvalReport) -> None:
    for metric in ("fim.edit_similarity", "fim.token_match"):
        row = tiny_report.row(metric)
        assert row is not None and row.delta is not None and row.ci_low is not None
        assert row.delta > 0.03, metric
        assert row.ci_low > 0.0, metric  # the whole 95% interval favours the adapter
    em = tiny_report.row("fim.exact_match")
    assert em is not None and em.adapter is not None and em.base is not None
    assert em.adapter >= em.base


@pytest.mark.slow
def test_the_adapter_has_lower_loss_on_held_out_code(tiny_report: EvalReport) -> None:
    assert tiny_report.adapter is not None
    assert tiny_report.adapter.eval_loss is not None and tiny_report.base.eval_loss is not None
    assert tiny_report.adapter.eval_loss < tiny_report.base.eval_loss - 1.0
    assert tiny_report.base.loss_tokens == tiny_report.adapter.loss_tokens > 0


@pytest.mark.slow
def test_humaneval_runs_through_the_serving_engine(tiny_report: EvalReport) -> None:
    for scores in (tiny_report.base, tiny_report.adapter):
        assert scores is not None
        assert scores.humaneval["pass@1"].n == 2
        assert sum(scores.sandbox_outcomes.values()) == 2
    assert tiny_report.row("humaneval.pass@1") is not None


@pytest.mark.slow
def test_the_report_is_json_and_renders_side_by_side(tiny_report: EvalReport) -> None:
    data = json.loads(tiny_report.model_dump_json())
    assert data["fim_tasks"] == 30
    assert data["examples"][0]["adapter"] is not None
    console = Console(record=True, width=140)
    console.print(render_comparison(tiny_report))
    text = console.export_text()
    assert "fim.exact_match[line]" in text and "eval_loss" in text and "humaneval.pass@1" in text


def test_held_out_snippets_render_with_both_models_completions_side_by_side(
    team_store: FileStore,
) -> None:
    spec = _spec("unused", adapter=ADAPTER_PREFIX, humaneval={"enabled": False})
    docs = load_holdout(team_store, TEAM, DATASET)
    tasks = make_fim_tasks(docs, 30, spec.fim.cuts, seed=spec.seed, context=spec.fim.context_chars)
    report = run_evaluation(
        spec, team_store, base=Candidate(Blank()), adapter=Candidate(Oracle(tasks), ADAPTER_PREFIX)
    )
    console = Console(record=True, width=400)
    console.print(render_examples(report, count=1))
    text = console.export_text()
    row = next(line for line in text.splitlines() if tasks[0].path in line)
    first = tasks[0].middle.strip().splitlines()[0].strip()
    assert row.count(first) == 2  # the held-out code, and the adapter's identical completion
