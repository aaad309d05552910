"""Quality benchmark: does fine-tuning the stand-in base on a team's code make it better?

For the CODE stand-in base (tailor/demo/tiny.py, cached like the tests' bases) and two
corpora, a LoRA adapter is trained with the hyperparameters Tailor chooses by default
(tailor/stages/train/auto.py: rank and learning rate from the dataset's and the base's size; the
architecture's default target modules) and evaluated along the run, through the evaluation
stage (serving engine, FIM tasks cut from held-out files, paired bootstrap 95% CIs):

- team: the tests' synthetic house-style codebase (40 train / 10 held-out modules);
- unseen: 50 stdlib/site-packages files outside the base's pre-training sample (40/10),
  ordinary code the base never trained on, in no house style.

The baseline, measured in the same run, is the base model itself on the same tasks (step 0).
Writes bench/results/quality.json and prints a table.
Run: `.venv/bin/python bench/quality.py [--steps 200] [--every 50] [--tasks 30]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tailor.demo.sample_data import Document, house_style_documents, write_documents  # noqa: E402
from tailor.demo.stdlib_corpus import broad_code_files, read_text  # noqa: E402
from tailor.demo.tiny import CODE, tiny_base_cached  # noqa: E402
from tailor.stages.evaluate.entrypoint import evaluate  # noqa: E402
from tailor.stages.evaluate.spec import EvalReport, EvalSpec  # noqa: E402
from tailor.stages.train import data  # noqa: E402
from tailor.stages.train.auto import choose, estimate_params  # noqa: E402
from tailor.stages.train.fim import tokenizer_fim_ids  # noqa: E402
from tailor.stages.train.spec import TrainSpec, default_lora_targets  # noqa: E402
from tailor.storage import FileStore  # noqa: E402

CACHE = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))
TEAM = "acme"
SEQ_LEN, BATCH = 128, 8


def unseen_documents(count: int = 50) -> list[Document]:
    """Files of the broad corpus the CODE base's sample left out (every 5th held out)."""
    seen = CODE.files + CODE.eval_files
    files = broad_code_files(seen + 1000)[seen + 500 : seen + 500 + count]
    return [
        (f"unseen/{i:03d}_{p.name}", read_text(p), "holdout" if i % 5 == 4 else "train")
        for i, p in enumerate(files)
    ]


def train_rows(base: Path, texts: list[str], steps: int, seed: int) -> tuple[Any, list[list[int]]]:
    """The tokenizer and enough packed FIM rows for `steps` batches (new cuts every pass)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    pipeline = data.token_pipeline(tokenizer, tokenizer_fim_ids(tokenizer, None), 0.5, 0.5)
    rng = random.Random(seed)
    rows: list[list[int]] = []
    while len(rows) < steps * BATCH:
        rows.extend(data.sequences(rng.sample(texts, len(texts)), pipeline, SEQ_LEN, rng))
    return tokenizer, rows


def chosen_hyperparameters(base: Path, texts: list[str], tokenizer: Any) -> dict[str, Any]:
    """What `auto` picks for this dataset and base (rank, alpha, learning rate)."""
    from transformers import AutoConfig

    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    spec = TrainSpec(
        base_model="bench", team=TEAM, dataset_id="d", adapter_name="a", method="lora",
        seq_len=SEQ_LEN, micro_batch=BATCH, grad_accum=1,
    )  # fmt: skip
    chosen = choose(spec, tokens, estimate_params(AutoConfig.from_pretrained(base)))
    return chosen.model_dump()


def evaluate_at(base: Path, store: FileStore, dataset: str, adapter: str, tasks: int) -> EvalReport:
    fim = {"tasks": tasks, "context_chars": 600, "max_new_tokens": 48, "loss_documents": 10}
    spec = EvalSpec.model_validate(
        {
            "team": TEAM, "base_model": "bench", "base_source": str(base), "dataset_id": dataset,
            "adapter": adapter, "fim": fim, "humaneval": {"enabled": False},
        }
    )  # fmt: skip
    return evaluate(spec, store)


def point(report: EvalReport, step: int, train_s: float) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "train_s": round(train_s, 1)}
    for metric in ("eval_loss", "fim.exact_match", "fim.edit_similarity", "fim.token_match"):
        c = report.row(metric)
        if c is not None:
            row[metric] = {
                "base": c.base, "adapter": c.adapter, "delta": c.delta,
                "ci_low": c.ci_low, "ci_high": c.ci_high, "n": c.n,
            }  # fmt: skip
    return row


def learning_curve(
    base: Path, store: FileStore, name: str, docs: list[Document], args: argparse.Namespace
) -> dict[str, Any]:
    """Train one adapter, evaluating base vs adapter every `args.every` steps."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    write_documents(store, TEAM, name, docs)
    texts = [content for _, content, split in docs if split == "train"]
    tokenizer, rows = train_rows(base, texts, args.steps, args.seed)
    hp = chosen_hyperparameters(base, texts, tokenizer)
    torch.manual_seed(args.seed)
    targets = default_lora_targets("gpt_bigcode")
    config = LoraConfig(r=hp["lora_r"], lora_alpha=hp["lora_alpha"], target_modules=targets)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=hp["learning_rate"]
    )
    curve, train_s = [], 0.0
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        model.train()
        batch = torch.tensor(rows[(step - 1) * BATCH : step * BATCH])
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        train_s += time.perf_counter() - started
        if step % args.every == 0 or step == args.steps:
            prefix = f"teams/{TEAM}/adapters/{name}/{step}"
            local = Path(store.root) / prefix
            model.save_pretrained(local)
            report = evaluate_at(base, store, name, prefix, args.tasks)
            curve.append(point(report, step, train_s))
            print(f"{name} step {step}: {json.dumps(curve[-1]['fim.edit_similarity'])}", flush=True)
    return {"hyperparameters": hp, "targets": targets, "curve": curve}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", type=Path, default=None, help="A built base (default: CODE).")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the shared machine's cores; and the same numbers on any core count
    started = time.perf_counter()
    base = args.base or tiny_base_cached(CACHE, recipe=CODE)
    built = json.loads((base / "tailor_tiny.json").read_text())
    import tempfile

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = FileStore(Path(tmp) / "objects")
        results["team"] = learning_curve(base, store, "team", house_style_documents(40, 10), args)
        results["unseen"] = learning_curve(base, store, "unseen", unseen_documents(), args)
    out = {
        "benchmark": "quality",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "base": {k: built[k] for k in ("parameters", "eval_loss", "last_loss", "build_s", "files")},
        "settings": vars(args) | {"base": str(base), "seq_len": SEQ_LEN, "batch": BATCH},
        "baseline": "the base model on the same FIM tasks and held-out files (each row's 'base')",
        "corpora": results,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    path = ROOT / "bench" / "results" / "quality.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print_table(out)
    print(f"wrote {path}")


def print_table(out: dict[str, Any]) -> None:
    print(f"{'corpus':8} {'step':>5} {'train s':>8} {'eval loss':>15} {'exact match':>13} "
          f"{'edit similarity (95% CI of delta)':>40}")  # fmt: skip
    for name, corpus in out["corpora"].items():
        for p in corpus["curve"]:
            loss, em, es = p["eval_loss"], p["fim.exact_match"], p["fim.edit_similarity"]
            print(
                f"{name:8} {p['step']:>5} {p['train_s']:>8} "
                f"{loss['base']:>6.3f} → {loss['adapter']:<6.3f} "
                f"{100 * em['base']:>5.1f} → {100 * em['adapter']:<5.1f} "
                f"{100 * es['base']:>5.1f} → {100 * es['adapter']:<5.1f} "
                f"({100 * es['delta']:+.1f} "
                f"[{100 * es['ci_low']:+.1f}, {100 * es['ci_high']:+.1f}])"
            )


if __name__ == "__main__":
    main()
