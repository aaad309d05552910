"""HumanEval through the Generator interface: known-correct scores 1.0, known-wrong 0.0."""

from __future__ import annotations

import time

import pytest

from tailor.stages.evaluate.humaneval import (
    STOP_SEQUENCES,
    Problem,
    load_problems,
    program,
    run_humaneval,
    truncate_at_stop,
)
from tailor.stages.evaluate.spec import SandboxLimits
from tailor.stages.serve.generation import Generation, GenerationRequest

LIMITS = SandboxLimits(timeout_s=10.0, cpu_s=5, memory_mb=1024)


class Scripted:
    """A Generator answering each HumanEval prompt with texts chosen per problem."""

    def __init__(self, problems: list[Problem], answer: dict[str, list[str]] | None = None) -> None:
        self.by_prompt = {p.prompt: p for p in problems}
        self.answer = answer or {}
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> list[Generation]:
        self.requests.append(request)
        problem = self.by_prompt[request.prompt]
        texts = self.answer.get(problem.task_id, [problem.canonical_solution] * request.n)
        return [
            Generation(text=t, finish_reason="stop", completion_tokens=1, prompt_tokens=1)
            for t in texts[: request.n]
        ]


def _run(gen: Scripted, problems: list[Problem], n: int = 1, workers: int = 2) -> list[float]:
    result = run_humaneval(
        gen,
        problems,
        n_samples=n,
        temperature=0.8 if n > 1 else 0.0,
        max_new_tokens=256,
        limits=LIMITS,
        workers=workers,
    )
    return result.pass_at(1)


def test_the_package_ships_164_problems() -> None:
    problems = load_problems()
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0"
    assert [p.task_id for p in load_problems(subset=3)] == [f"HumanEval/{i}" for i in range(3)]


def test_canonical_solutions_score_pass_at_1_of_one() -> None:
    problems = load_problems(subset=15)
    scores = _run(Scripted(problems), problems)
    assert sum(scores) / len(scores) == 1.0


def test_wrong_solutions_score_zero() -> None:
    problems = load_problems(subset=15)
    wrong = {p.task_id: ["    return None\n    raise AssertionError\n"] for p in problems}
    wrong |= {problems[0].task_id: ["    raise NotImplementedError\n"]}
    scores = _run(Scripted(problems, wrong), problems)
    assert sum(scores) == 0.0


def test_requests_carry_the_stop_sequences_and_the_samples_asked_for() -> None:
    problems = load_problems(subset=2)
    gen = Scripted(problems)
    _run(gen, problems, n=3)
    assert [r.n for r in gen.requests] == [3, 3]
    assert gen.requests[0].stop == STOP_SEQUENCES
    assert gen.requests[0].temperature == 0.8


def test_pass_at_1_is_the_share_of_correct_samples() -> None:
    problems = load_problems(subset=2)
    first = problems[0]
    answers = {first.task_id: [first.canonical_solution, "    return 0\n"]}
    scores = _run(Scripted(problems, answers), problems, n=2)
    assert scores == [0.5, 1.0]


def test_hostile_completions_fail_and_the_run_goes_on() -> None:
    problems = load_problems(subset=4)
    hostile = {
        problems[0].task_id: ["    while True:\n        pass\n"],
        problems[1].task_id: ["    import os\n    while True:\n        os.fork()\n"],
        problems[2].task_id: [
            "    import socket\n    socket.create_connection(('127.0.0.1', 6379))\n"
        ],
    }
    limits = {"timeout_s": 4.0, "cpu_s": 1}
    result = run_humaneval(
        Scripted(problems, hostile),
        problems,
        n_samples=1,
        temperature=0.0,
        max_new_tokens=64,
        limits=LIMITS.model_copy(update=limits),
        workers=2,
    )
    assert result.pass_at(1) == [0.0, 0.0, 0.0, 1.0]
    assert sum(result.outcomes().values()) == 4


def test_completions_are_cut_at_the_next_top_level_statement() -> None:
    text = "    return 1\n\ndef helper():\n    pass\n"
    assert truncate_at_stop(text) == "    return 1\n"
    problem = load_problems(subset=1)[0]
    assert program(problem, "    return 1\n").rstrip().endswith(f"check({problem.entry_point})")


@pytest.mark.slow
def test_all_164_canonical_solutions_pass_in_under_a_minute() -> None:
    problems = load_problems()
    started = time.monotonic()
    scores = _run(Scripted(problems), problems, workers=2)
    assert sum(scores) == 164
    assert time.monotonic() - started < 60  # 10-15 s on 2 busy cores
