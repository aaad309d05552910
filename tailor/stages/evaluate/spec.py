"""EvalSpec, the evaluation report and the publish gate, as data.

Only pydantic and the standard library here: the API imports this module (request bodies,
stored reports, the gate) and its image carries no torch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tailor.base_names import BaseName

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
HUMANEVAL_SIZE = 164
_EPS = 1e-9  # points: a drop of exactly the allowed amount passes despite float rounding

FimCut = Literal["span", "line", "block"]
ALL_CUTS: tuple[FimCut, ...] = ("span", "line", "block")


class SandboxLimits(BaseModel):
    """Limits for one run of generated code in the sandbox."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=600.0,
        description="Wall-clock limit; the whole sandbox is killed after.",
    )
    memory_mb: int = Field(
        default=1024,
        ge=64,
        le=65536,
        description="Address-space limit (RLIMIT_AS) per process, MiB.",
    )
    cpu_s: int = Field(
        default=5, ge=1, le=600, description="CPU-time limit (RLIMIT_CPU) per process, s."
    )
    max_processes: int = Field(
        default=16, ge=1, le=1024, description="Processes and threads the program may have at once."
    )
    max_file_mb: int = Field(
        default=16, ge=1, le=4096, description="Largest file (stdout included) it may write, MiB."
    )


class FimSpec(BaseModel):
    """Fill-in-the-middle tasks cut from the held-out split of the team's dataset."""

    model_config = ConfigDict(extra="forbid")

    tasks: int = Field(default=200, ge=1, le=100_000, description="Number of FIM tasks to cut.")
    cuts: list[FimCut] = Field(
        default_factory=lambda: list(ALL_CUTS),
        min_length=1,
        description="Kinds of cut, used in turn: `span` (a random span), `line` (the rest "
        "of a line), `block` (the body of an indented block, e.g. a function).",
    )
    context_chars: int = Field(
        default=2048, ge=64, le=1_000_000, description="Characters kept on each side of the middle."
    )
    max_new_tokens: int = Field(
        default=128, ge=1, le=4096, description="Largest middle the model may generate, in tokens."
    )
    loss_documents: int = Field(
        default=64,
        ge=0,
        le=100_000,
        description="Held-out documents scored for eval loss (0 = none).",
    )


class HumanEvalSpec(BaseModel):
    """General coding (forgetting check): HumanEval pass@k with sandboxed execution."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run HumanEval at all.")
    subset: int | None = Field(
        default=None,
        ge=1,
        le=HUMANEVAL_SIZE,
        description="Run only the first N problems (for speed); None runs all 164.",
    )
    n_samples: int = Field(
        default=1, ge=1, le=200, description="Completions sampled per problem (n)."
    )
    k: list[int] = Field(
        default_factory=lambda: [1, 10],
        min_length=1,
        description="k values for pass@k; those above n_samples are left out of the report.",
    )
    temperature: float = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        description="Sampling temperature; 0 is greedy (only with n=1).",
    )
    max_new_tokens: int = Field(
        default=384, ge=1, le=4096, description="Largest completion per sample, in tokens."
    )
    workers: int = Field(
        default=2, ge=1, le=64, description="Sandboxed programs run at once (bounded parallelism)."
    )
    sandbox: SandboxLimits = Field(
        default_factory=SandboxLimits, description="Limits for each generated program."
    )

    @model_validator(mode="after")
    def _sampling_needs_temperature(self) -> HumanEvalSpec:
        if self.n_samples > 1 and self.temperature == 0.0:
            raise ValueError(
                "n_samples > 1 with temperature 0 gives n identical greedy samples; "
                "set temperature > 0 (Chen et al. use 0.2 for pass@1, 0.8 for pass@10)"
            )
        return self


class EvalSpec(BaseModel):
    """One evaluation of a base model and (optionally) an adapter on the same tasks."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(
        description="Slug of the team that owns the dataset and adapter.", pattern=SLUG
    )
    base_model: BaseName = Field(
        description="Base model: its name in the platform's catalog (never a path).",
    )
    base_source: str | None = Field(
        default=None,
        exclude=True,  # the platform's, not the team's: never in a job, report or response
        description="Where the base's files are: set by the worker from the catalog.",
    )
    adapter: str | None = Field(
        default=None,
        pattern=r"^teams/[a-z0-9][a-z0-9-]{0,62}/adapters/[^/]+/[^/]+/?$",
        description="Object-store prefix of the adapter (`teams/<team>/adapters/<name>/<ver>/`);"
        " None evaluates the base model alone.",
    )
    dataset_id: str = Field(
        description="Dataset id under `teams/<team>/datasets/` whose holdout split is used.",
        pattern=r"^[A-Za-z0-9._-]{1,128}$",
    )
    seed: int = Field(
        default=0, ge=0, description="Seed for cutting tasks, sampling and bootstrap CIs."
    )
    fim: FimSpec = Field(default_factory=FimSpec, description="Team-code FIM evaluation.")
    humaneval: HumanEvalSpec = Field(
        default_factory=HumanEvalSpec, description="HumanEval forgetting check."
    )

    def base_location(self) -> str:
        """Where to load the base from: the catalog source the worker set."""
        if not self.base_source:
            raise ValueError(
                f"base_source is not set: the worker resolves base_model {self.base_model!r} "
                "through the platform's catalog before it evaluates"
            )
        return self.base_source

    @model_validator(mode="after")
    def _adapter_belongs_to_team(self) -> EvalSpec:
        if self.adapter is not None and not self.adapter.startswith(f"teams/{self.team}/"):
            raise ValueError(f"adapter must be a prefix under teams/{self.team}/adapters/")
        return self


class Estimate(BaseModel):
    """A mean over tasks with its 95% confidence interval and the number of tasks."""

    value: float = Field(description="Mean over tasks.")
    ci_low: float = Field(description="Lower end of the 95% confidence interval.")
    ci_high: float = Field(description="Upper end of the 95% confidence interval.")
    n: int = Field(ge=0, description="Number of tasks the mean is over.")


class ModelScores(BaseModel):
    """Every score of one model (base or adapter) in an evaluation."""

    label: str = Field(description="`base` or `adapter`.")
    fim: dict[str, Estimate] = Field(
        default_factory=dict,
        description="FIM metrics over all tasks: exact_match, edit_similarity, token_match.",
    )
    fim_by_cut: dict[str, dict[str, Estimate]] = Field(
        default_factory=dict, description="The same FIM metrics per kind of cut."
    )
    eval_loss: float | None = Field(
        default=None, description="Mean token loss on held-out documents."
    )
    perplexity: float | None = Field(default=None, description="exp(eval_loss).")
    loss_tokens: int = Field(default=0, ge=0, description="Tokens the eval loss is over.")
    humaneval: dict[str, Estimate] = Field(
        default_factory=dict, description="HumanEval pass@k (keys `pass@1`, `pass@10`)."
    )
    sandbox_outcomes: dict[str, int] = Field(
        default_factory=dict,
        description="HumanEval programs per outcome (passed/failed/timeout/killed).",
    )


class Comparison(BaseModel):
    """One metric side by side: base, adapter, delta and the delta's paired 95% CI."""

    metric: str = Field(description="Metric name, e.g. `fim.exact_match` or `humaneval.pass@1`.")
    base: float | None = Field(description="Base model's value.")
    adapter: float | None = Field(description="Adapter's value.")
    delta: float | None = Field(description="adapter - base.")
    ci_low: float | None = Field(default=None, description="Lower end of the delta's 95% CI.")
    ci_high: float | None = Field(default=None, description="Upper end of the delta's 95% CI.")
    n: int = Field(default=0, ge=0, description="Tasks the metric is over (0 for eval loss).")
    higher_is_better: bool = Field(default=True, description="False for loss and perplexity.")


class FimExample(BaseModel):
    """One FIM task with what each model wrote, for people to look at."""

    task_id: str = Field(description="Task id (`<cut>-<index>`).")
    kind: FimCut = Field(description="Kind of cut.")
    path: str = Field(description="`repo:path` of the held-out file.")
    middle: str = Field(description="The code that was cut out (the reference).")
    base: str = Field(description="The base model's completion.")
    adapter: str | None = Field(default=None, description="The adapter's completion.")


class EvalReport(BaseModel):
    """The result of one evaluation: JSON in the adapter's tailor.json and in the API."""

    spec: EvalSpec = Field(description="The spec that was run.")
    base: ModelScores = Field(description="Scores of the base model.")
    adapter: ModelScores | None = Field(default=None, description="Scores of the adapter, if any.")
    comparison: list[Comparison] = Field(
        default_factory=list, description="Side-by-side rows, adapter vs base."
    )
    fim_tasks: int = Field(default=0, ge=0, description="FIM tasks both models were scored on.")
    fim_tasks_by_cut: dict[str, int] = Field(default_factory=dict, description="Tasks per cut.")
    humaneval_problems: int = Field(default=0, ge=0, description="HumanEval problems run.")
    examples: list[FimExample] = Field(
        default_factory=list, description="The first few FIM tasks with both completions."
    )
    duration_s: float = Field(default=0.0, ge=0.0, description="Wall time of the evaluation.")

    def row(self, metric: str) -> Comparison | None:
        """The comparison row for a metric, if the evaluation produced it."""
        return next((c for c in self.comparison if c.metric == metric), None)


class GatePolicy(BaseModel):
    """A team's publish policy: what an adapter must show before it is published.

    Every team has one: a team that set none gets these defaults (an adapter that does not
    hurt its base on the team's held-out code and on general coding).
    """

    model_config = ConfigDict(extra="forbid")

    max_eval_loss_increase: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="Adapter's held-out eval loss must be ≤ base's + this (nats per token).",
    )
    require_eval_loss: bool = Field(
        default=True, description="Fail the gate when the evaluation did not measure eval loss."
    )
    min_edit_similarity_ci_low_points: float = Field(
        default=-2.0,
        ge=-100.0,
        le=100.0,
        description="Lower end of the 95% CI of the FIM edit-similarity delta (adapter - base) "
        "must be ≥ this many percentage points: a small negative margin lets an adapter that "
        "is as good as its base through, one that is surely worse not.",
    )
    min_fim_exact_match_delta_points: float | None = Field(
        default=None,
        ge=-100.0,
        le=100.0,
        description="If set, adapter's FIM exact match must be ≥ base + this many points.",
    )
    max_humaneval_pass1_drop_points: float = Field(
        default=2.0,
        ge=0.0,
        le=100.0,
        description="Adapter's HumanEval pass@1 may be at most this many points below base.",
    )
    require_humaneval: bool = Field(
        default=False, description="Fail the gate when the evaluation did not run HumanEval."
    )


class GateDecision(BaseModel):
    """Whether an adapter may be published, with a reason per check."""

    passed: bool = Field(description="True when every check passed.")
    reasons: list[str] = Field(description="One line per check, saying what was compared.")


def check_gate(report: EvalReport, policy: GatePolicy) -> GateDecision:
    """Apply a publish policy to an evaluation report (pure)."""
    if report.adapter is None:
        return GateDecision(passed=False, reasons=["the evaluation has no adapter to publish"])
    checks = [
        _check_loss(report, policy),
        _check_edit_similarity(report, policy),
        _check_fim(report, policy),
        _check_humaneval(report, policy),
    ]
    kept = [c for c in checks if c is not None]
    return GateDecision(passed=all(ok for ok, _ in kept), reasons=[reason for _, reason in kept])


def _check_loss(report: EvalReport, policy: GatePolicy) -> tuple[bool, str]:
    row = report.row("eval_loss")
    if row is None or row.base is None or row.adapter is None:
        ok = not policy.require_eval_loss
        return ok, "held-out eval loss was not measured" + ("" if ok else ": the gate needs it")
    allowed = policy.max_eval_loss_increase
    ok = row.adapter <= row.base + allowed + _EPS
    return ok, (
        f"held-out eval loss {_verdict(ok)}: adapter {row.adapter:.3f} vs base {row.base:.3f} "
        f"(may rise ≤ {allowed:.3f})"
    )


def _check_edit_similarity(report: EvalReport, policy: GatePolicy) -> tuple[bool, str]:
    row = report.row("fim.edit_similarity")
    if row is None or row.ci_low is None or row.delta is None:
        return False, "FIM edit similarity was not measured: the gate needs it"
    low, need = 100.0 * row.ci_low, policy.min_edit_similarity_ci_low_points
    ok = low >= need - _EPS
    return ok, (
        f"FIM edit similarity {_verdict(ok)}: adapter {_pct(row.adapter)} vs base "
        f"{_pct(row.base)} ({100 * row.delta:+.1f} points, 95% CI from {low:+.1f}, "
        f"needs ≥ {need:+.1f}; n={row.n})"
    )


def _check_fim(report: EvalReport, policy: GatePolicy) -> tuple[bool, str] | None:
    need = policy.min_fim_exact_match_delta_points
    if need is None:
        return None
    row = report.row("fim.exact_match")
    if row is None or row.delta is None:
        return False, "FIM exact match was not measured: the gate needs it"
    delta = 100.0 * row.delta
    ok = delta >= need - _EPS
    return ok, (
        f"FIM exact match {_verdict(ok)}: adapter {_pct(row.adapter)} vs base {_pct(row.base)} "
        f"({delta:+.1f} points, needs ≥ {need:+.1f}; n={row.n})"
    )


def _check_humaneval(report: EvalReport, policy: GatePolicy) -> tuple[bool, str]:
    row = report.row("humaneval.pass@1")
    if row is None or row.delta is None:
        ok = not policy.require_humaneval
        return ok, "HumanEval was not run" + ("" if ok else ": the policy requires it")
    drop, allowed = -100.0 * row.delta, policy.max_humaneval_pass1_drop_points
    ok = drop <= allowed + _EPS
    return ok, (
        f"HumanEval pass@1 {_verdict(ok)}: adapter {_pct(row.adapter)} vs base {_pct(row.base)} "
        f"({-drop:+.1f} points, may drop ≤ {allowed:.1f}; n={row.n})"
    )


def _verdict(ok: bool) -> str:
    return "ok" if ok else "FAILED"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
