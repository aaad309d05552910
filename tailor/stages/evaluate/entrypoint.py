"""The evaluation stage's entrypoint: load the models, run the evaluation, free them.

Generation goes through the serving engine (`TailorEngine`), the same code that answers
IDE requests, with the adapter hot-loaded from the object store under its key; eval loss
comes from a second, plain transformers copy of the base with the adapter on and off.
"""

from __future__ import annotations

from tailor.stages.evaluate.compare import Candidate, Progress, run_evaluation
from tailor.stages.evaluate.loss import LossScorer
from tailor.stages.evaluate.spec import EvalReport, EvalSpec
from tailor.stages.serve.engine import TailorEngine
from tailor.storage import ObjectStore


def evaluate(
    spec: EvalSpec, store: ObjectStore, *, progress: Progress | None = None, device: str = "cpu"
) -> EvalReport:
    """Evaluate the spec's base model and adapter; the report compares them side by side."""
    engine = TailorEngine(spec.base_location(), store, device=device).start()
    scorer: LossScorer | None = None
    try:
        engine.wait_ready()
        scorer = LossScorer(spec.base_location(), store, spec.adapter, device=device)
        # Bind the scorer to a local name mypy sees as non-None inside the lambdas.
        loss = scorer
        base = Candidate(engine, None, lambda texts: loss.score(texts, with_adapter=False))
        adapter = None
        if spec.adapter is not None:
            adapter = Candidate(
                engine, spec.adapter, lambda texts: loss.score(texts, with_adapter=True)
            )
        return run_evaluation(spec, store, base=base, adapter=adapter, progress=progress)
    finally:
        engine.close()
        if scorer is not None:
            scorer.close()
