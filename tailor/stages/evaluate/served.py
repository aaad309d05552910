"""The served path checked against the evaluation.

The team's FIM tasks (the evaluation's own: same spec, same seed) go to the published
endpoint over HTTP exactly as an IDE sends them (OpenAI `/v1/completions`, prompt + suffix,
the team's token, greedy), and the answers are compared with the evaluated adapter's,
generated in process. A wrong FIM layout at serving, an adapter not applied, another
tokenizer: each changes the served completions, so the two disagree and the check fails
with a reason that names it. An evaluation says nothing about what IDEs get unless this
agrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, Field

from tailor.stages.evaluate.compare import Candidate, Progress, complete_task, spec_tasks
from tailor.stages.evaluate.fim_tasks import FimTask, load_holdout
from tailor.stages.evaluate.scores import edit_similarity, mean
from tailor.stages.evaluate.spec import EvalSpec
from tailor.stages.serve.generation import Generation, GenerationRequest
from tailor.stages.serve.prompting import PromptTooLongError
from tailor.storage import ObjectStore

_SHOWN = 3  # disagreeing tasks shown in the result


class ServedError(Exception):
    """The endpoint did not answer a completion (unreachable, refused the token, 4xx/5xx)."""


class _ServedPromptTooLong(PromptTooLongError):
    """The gateway's `context_length_exceeded`: the task's context is halved and sent again."""

    def __init__(self, message: str) -> None:  # the gateway's numbers are in its message
        ValueError.__init__(self, message)


@dataclass
class HttpCompletions:
    """A `Generator` that is an IDE: OpenAI `/v1/completions` on the gateway with a team token.

    `single_line` is Tailor's extension (sent in the body as OpenAI clients' `extra_body`
    does), so a line task asks the endpoint exactly what the evaluation asked the engine.
    """

    base_url: str  # the gateway, e.g. http://127.0.0.1:8001
    token: str
    model: str  # the endpoint's name
    timeout_s: float = 300.0
    repository_context: bool = True  # False: the endpoint adds none of the team's code

    def generate(self, request: GenerationRequest) -> list[Generation]:
        """One greedy completion of `request` from the endpoint."""
        body = {
            "model": self.model,
            "prompt": request.prompt,
            "suffix": request.suffix,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
            "single_line": request.single_line,
            "repository_context": self.repository_context,
        }
        url = self.base_url.rstrip("/") + "/v1/completions"
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            answer = httpx.post(url, json=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise ServedError(f"the gateway at {self.base_url} did not answer: {exc}") from exc
        if answer.status_code != 200:
            error = _error_of(answer)
            if error.get("code") == "context_length_exceeded":
                raise _ServedPromptTooLong(str(error.get("message", "")))
            raise ServedError(
                f"endpoint {self.model!r} answered {answer.status_code}: "
                f"{error.get('message', answer.text[:200])}"
            )
        choice = answer.json()["choices"][0]
        usage = answer.json().get("usage") or {}
        return [
            Generation(
                text=choice["text"],
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                completion_tokens=int(usage.get("completion_tokens", 0)),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
            )
        ]


def _error_of(answer: httpx.Response) -> dict[str, object]:
    try:
        error = answer.json().get("error")
    except ValueError:
        return {}
    return error if isinstance(error, dict) else {}


class AgreementPolicy(BaseModel):
    """When served and in-process completions agree.

    Greedy decoding is deterministic on one machine, but the gateway may run on another
    CPU, batch the request with others, or take a different kernel path, and a near-tie
    between two tokens can then flip (measured: 0 of 30 tasks differed on one machine).
    One flip changes one task; a wrong layout or a missing adapter changes most of them.
    """

    min_identical: float = Field(
        0.8, ge=0.0, le=1.0, description="Share of tasks whose completions must be identical."
    )
    max_similarity_gap: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Largest difference of mean edit similarity to the reference middles.",
    )


class Disagreement(BaseModel):
    """One task answered differently in process and by the endpoint."""

    task_id: str
    path: str
    in_process: str
    served: str


class AgreementReport(BaseModel):
    """Served vs in-process completions of the same FIM tasks."""

    endpoint: str
    tasks: int
    identical: int
    in_process_similarity: float = Field(description="Mean edit similarity to the middles.")
    served_similarity: float
    policy: AgreementPolicy
    agreed: bool
    reason: str | None = None
    disagreements: list[Disagreement] = Field(default_factory=list)


def check_served(
    spec: EvalSpec,
    store: ObjectStore,
    *,
    evaluated: Candidate,
    served: Candidate,
    endpoint: str,
    policy: AgreementPolicy | None = None,
    progress: Progress | None = None,
) -> AgreementReport:
    """Run the spec's FIM tasks through both candidates and decide whether they agree."""
    policy = policy or AgreementPolicy()
    tasks = spec_tasks(spec, load_holdout(store, spec.team, spec.dataset_id))
    mine, theirs = [], []
    for i, task in enumerate(tasks):
        mine.append(complete_task(evaluated, task, spec))
        theirs.append(complete_task(served, task, spec))
        if progress is not None:
            progress((i + 1) / len(tasks), f"FIM task {i + 1}/{len(tasks)} in process and served")
    return compare_completions(tasks, mine, theirs, endpoint=endpoint, policy=policy)


def compare_completions(
    tasks: Sequence[FimTask],
    in_process: Sequence[str],
    served: Sequence[str],
    *,
    endpoint: str,
    policy: AgreementPolicy,
) -> AgreementReport:
    """The agreement of two models' completions of the same tasks, with the reason it fails."""
    same = sum(a == b for a, b in zip(in_process, served, strict=True))
    mine = mean([edit_similarity(c, t.middle) for c, t in zip(in_process, tasks, strict=True)])
    theirs = mean([edit_similarity(c, t.middle) for c, t in zip(served, tasks, strict=True)])
    n = len(tasks)
    reasons = []
    if same < policy.min_identical * n:
        reasons.append(
            f"served completions differ from the evaluated adapter's on {n - same}/{n} tasks "
            f"(at most {n - _ceil(policy.min_identical * n)} may): wrong FIM layout, adapter "
            "not applied or another tokenizer at the endpoint?"
        )
    if abs(theirs - mine) > policy.max_similarity_gap:
        reasons.append(
            f"served edit similarity {theirs:.1%} vs {mine:.1%} in process (a gap over "
            f"{policy.max_similarity_gap:.1%}): the endpoint does not serve what was evaluated"
        )
    shown = [
        Disagreement(task_id=t.task_id, path=f"{t.repo}:{t.path}", in_process=a, served=b)
        for t, a, b in zip(tasks, in_process, served, strict=True)
        if a != b
    ][:_SHOWN]
    return AgreementReport(
        endpoint=endpoint,
        tasks=n,
        identical=same,
        in_process_similarity=mine,
        served_similarity=theirs,
        policy=policy,
        agreed=not reasons,
        reason="; ".join(reasons) or None,
        disagreements=shown,
    )


def _ceil(x: float) -> int:
    return -int(-x // 1)
