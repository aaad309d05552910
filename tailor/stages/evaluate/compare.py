"""Score base and adapter on the same tasks in one run, and build the side-by-side report.

The runner knows models only as `Candidate`s: a `Generator` (the serving engine, or any
backend with that interface), the adapter key to put in requests, and optionally a
function that returns eval loss on held-out text. It imports no torch.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tailor.stages.evaluate.fim_tasks import Document, FimTask, load_holdout, make_fim_tasks
from tailor.stages.evaluate.humaneval import HumanEvalResult, Problem, load_problems, run_humaneval
from tailor.stages.evaluate.scores import (
    LossResult,
    bootstrap_ci,
    edit_similarity,
    exact_match,
    mean,
    token_match,
    wilson_interval,
)
from tailor.stages.evaluate.spec import (
    Comparison,
    Estimate,
    EvalReport,
    EvalSpec,
    FimExample,
    ModelScores,
)
from tailor.stages.serve.generation import GenerationRequest, Generator
from tailor.stages.serve.prompting import PromptTooLongError
from tailor.storage import ObjectStore

FIM_METRICS = ("exact_match", "edit_similarity", "token_match")
Progress = Callable[[float, str], None]
LossFn = Callable[[Sequence[str]], LossResult]
KEYWORD_WEIGHT = 5.0  # CodeBLEU weighs keywords 1.0 and other tokens 0.2
_EXAMPLES = 6  # FIM tasks shown in the report with both models' completions
_FIT_TRIES = 12  # halvings of the FIM context before a task is given up as too long


class EvaluationError(Exception):
    """The evaluation cannot run as specified (a person can fix the spec or the data)."""


@dataclass(frozen=True)
class Candidate:
    """A model under evaluation: how to generate with it and how to score its loss."""

    generator: Generator
    adapter: str | None = None  # `GenerationRequest.adapter`: None is the base model
    loss: LossFn | None = None


@dataclass
class _ModelRun:
    """Raw per-task results of one model, before they are summarised."""

    completions: list[str] = field(default_factory=list)
    fim: dict[str, list[float]] = field(default_factory=dict)
    loss: LossResult | None = None
    humaneval: HumanEvalResult | None = None


def run_evaluation(
    spec: EvalSpec,
    store: ObjectStore,
    *,
    base: Candidate,
    adapter: Candidate | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Evaluate base (and adapter) on the team's held-out code and HumanEval."""
    if (adapter is None) != (spec.adapter is None):
        raise EvaluationError("pass an adapter candidate exactly when the spec names an adapter")
    started = time.monotonic()
    docs = load_holdout(store, spec.team, spec.dataset_id)
    tasks = spec_tasks(spec, docs)
    loss_texts = [d.content for d in _sample(docs, spec.fim.loss_documents, spec.seed)]
    problems = load_problems(spec.humaneval.subset) if spec.humaneval.enabled else []
    candidates = {"base": base} | ({"adapter": adapter} if adapter is not None else {})
    report_progress = _Ticker(progress, len(candidates) * (len(tasks) + len(problems) + 1))
    runs = {
        label: _run_model(label, cand, spec, tasks, loss_texts, problems, report_progress)
        for label, cand in candidates.items()
    }
    scores = {label: _summarise(label, run, tasks, spec) for label, run in runs.items()}
    return EvalReport(
        spec=spec,
        base=scores["base"],
        adapter=scores.get("adapter"),
        comparison=_compare(runs, tasks, spec) if "adapter" in runs else [],
        fim_tasks=len(tasks),
        fim_tasks_by_cut={k: sum(t.kind == k for t in tasks) for k in dict.fromkeys(spec.fim.cuts)},
        humaneval_problems=len(problems),
        examples=_examples(runs, tasks),
        duration_s=time.monotonic() - started,
    )


class _Ticker:
    """Turns units of work done into progress fractions for the caller's callback."""

    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback, self.total, self.done = callback, max(total, 1), 0

    def __call__(self, message: str, units: int = 1) -> None:
        self.done += units
        if self.callback is not None:
            self.callback(min(1.0, self.done / self.total), message)


def spec_tasks(spec: EvalSpec, docs: Sequence[Document]) -> list[FimTask]:
    """The spec's FIM tasks: the same spec and documents always give the same tasks."""
    return make_fim_tasks(
        docs, spec.fim.tasks, spec.fim.cuts, seed=spec.seed, context=spec.fim.context_chars
    )


def _sample(docs: Sequence[Document], count: int, seed: int) -> list[Document]:
    """A seeded sample of documents (all of them when there are fewer)."""
    if count >= len(docs):
        return list(docs)
    return random.Random(seed).sample(list(docs), count)


def _run_model(
    label: str,
    cand: Candidate,
    spec: EvalSpec,
    tasks: Sequence[FimTask],
    loss_texts: Sequence[str],
    problems: Sequence[Problem],
    tick: _Ticker,
) -> _ModelRun:
    run = _ModelRun(fim={m: [] for m in FIM_METRICS})
    for task in tasks:
        completion = complete_task(cand, task, spec)
        run.completions.append(completion)
        run.fim["exact_match"].append(float(exact_match(completion, task.middle)))
        run.fim["edit_similarity"].append(edit_similarity(completion, task.middle))
        run.fim["token_match"].append(
            token_match(completion, task.middle, keyword_weight=KEYWORD_WEIGHT)
        )
        tick(f"{label}: FIM task {len(run.completions)}/{len(tasks)}")
    if cand.loss is not None and loss_texts:
        run.loss = cand.loss(loss_texts)
    tick(f"{label}: eval loss")
    if problems:
        he = spec.humaneval
        run.humaneval = run_humaneval(
            cand.generator,
            problems,
            n_samples=he.n_samples,
            temperature=he.temperature,
            max_new_tokens=he.max_new_tokens,
            limits=he.sandbox,
            workers=he.workers,
            adapter=cand.adapter,
            seed=spec.seed,
            progress=lambda done, total: tick(f"{label}: HumanEval {done}/{total}"),
        )
    return run


def complete_task(cand: Candidate, task: FimTask, spec: EvalSpec) -> str:
    """The model's middle for a task; the context is halved until the prompt fits."""
    prefix, suffix = task.prefix, task.suffix
    for _ in range(_FIT_TRIES):
        request = GenerationRequest.model_validate(
            dict(
                prompt=prefix,
                suffix=suffix,
                adapter=cand.adapter,
                max_new_tokens=spec.fim.max_new_tokens,
                temperature=0.0,
                single_line=task.kind == "line",
                seed=spec.seed,
            )
        )
        try:
            return cand.generator.generate(request)[0].text
        except PromptTooLongError:
            # Keep the text nearest the cursor: the end of the prefix, the start of the suffix.
            prefix, suffix = prefix[len(prefix) // 2 :], suffix[: len(suffix) // 2]
    raise EvaluationError(
        f"FIM task {task.task_id} does not fit the model's context even with little context: "
        "lower fim.max_new_tokens"
    )


def _estimate(values: Sequence[float], seed: int, binary: bool = False) -> Estimate:
    if binary:
        low, high = wilson_interval(int(sum(values)), len(values))
    else:
        low, high = bootstrap_ci(values, seed=seed)
    return Estimate(value=mean(values), ci_low=low, ci_high=high, n=len(values))


def _fim_estimates(fim: dict[str, list[float]], seed: int) -> dict[str, Estimate]:
    return {m: _estimate(v, seed, binary=m == "exact_match") for m, v in fim.items()}


def _summarise(label: str, run: _ModelRun, tasks: Sequence[FimTask], spec: EvalSpec) -> ModelScores:
    seed = spec.seed
    by_cut: dict[str, dict[str, Estimate]] = {}
    for kind in dict.fromkeys(t.kind for t in tasks):
        picked = {m: [v for v, t in zip(vs, tasks, strict=True) if t.kind == kind]
                  for m, vs in run.fim.items()}  # fmt: skip
        by_cut[kind] = _fim_estimates(picked, seed)
    scores = ModelScores(label=label, fim=_fim_estimates(run.fim, seed), fim_by_cut=by_cut)
    if run.loss is not None:
        scores.eval_loss, scores.perplexity = run.loss.loss, run.loss.perplexity
        scores.loss_tokens = run.loss.tokens
    if run.humaneval is not None:
        he = run.humaneval
        scores.humaneval = {
            f"pass@{k}": _estimate(he.pass_at(k), seed) for k in _ks(he, spec.humaneval.k)
        }
        scores.sandbox_outcomes = he.outcomes()
    return scores


def _ks(he: HumanEvalResult, wanted: Sequence[int]) -> list[int]:
    """The k values asked for that the samples allow (k <= n for every problem)."""
    n = min((p.n for p in he.problems), default=0)
    return sorted({k for k in wanted if 1 <= k <= n})


def _paired(metric: str, base: Sequence[float], adapter: Sequence[float], seed: int) -> Comparison:
    """A higher-is-better metric of both models with the paired bootstrap CI of the delta."""
    diffs = [a - b for a, b in zip(adapter, base, strict=True)]
    low, high = bootstrap_ci(diffs, seed=seed)
    b, a = mean(base), mean(adapter)
    return Comparison(
        metric=metric, base=b, adapter=a, delta=a - b, ci_low=low, ci_high=high, n=len(diffs)
    )


def _compare(
    runs: dict[str, _ModelRun], tasks: Sequence[FimTask], spec: EvalSpec
) -> list[Comparison]:
    seed = spec.seed
    base, adapter = runs["base"], runs["adapter"]
    rows = [_paired(f"fim.{m}", base.fim[m], adapter.fim[m], seed) for m in FIM_METRICS]
    for kind in dict.fromkeys(t.kind for t in tasks):
        keep = [i for i, t in enumerate(tasks) if t.kind == kind]
        b = [base.fim["exact_match"][i] for i in keep]
        a = [adapter.fim["exact_match"][i] for i in keep]
        rows.append(_paired(f"fim.exact_match[{kind}]", b, a, seed))
    if base.loss is not None and adapter.loss is not None:
        for name, bv, av in (
            ("eval_loss", base.loss.loss, adapter.loss.loss),
            ("perplexity", base.loss.perplexity, adapter.loss.perplexity),
        ):
            rows.append(
                Comparison(metric=name, base=bv, adapter=av, delta=av - bv, higher_is_better=False)
            )
    if base.humaneval is not None and adapter.humaneval is not None:
        for k in _ks(base.humaneval, spec.humaneval.k):
            rows.append(
                _paired(
                    f"humaneval.pass@{k}",
                    base.humaneval.pass_at(k),
                    adapter.humaneval.pass_at(k),
                    seed,
                )
            )
    return rows


def _examples(runs: dict[str, _ModelRun], tasks: Sequence[FimTask]) -> list[FimExample]:
    adapter = runs.get("adapter")
    return [
        FimExample(
            task_id=t.task_id,
            kind=t.kind,
            path=f"{t.repo}:{t.path}",
            middle=t.middle,
            base=runs["base"].completions[i],
            adapter=adapter.completions[i] if adapter is not None else None,
        )
        for i, t in enumerate(tasks[:_EXAMPLES])
    ]
