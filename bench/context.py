"""Repository-context benchmark: what retrieval and fine-tuning each add to cross-file FIM.

Quality. A synthetic team repository (seeded) where service modules call functions defined in
util modules of the same repository, with keyword arguments named after the definition's
parameters; a fifth of the service modules are held out of training. Each task's middle is one
line of a held-out module calling an imported function, so the signature it needs is in another
file. For the stand-in base (tailor/demo/tiny.py) and a LoRA adapter trained on the training
split (Tailor's default hyperparameters, as bench/quality.py), each with and without retrieval
(the team's index built from every file, the held-out module itself excluded by its path), the
completion goes through the serving engine and its prompter, as the gateway serves it: exact
match and edit similarity of the middle line. The baseline is the base without retrieval.

Cost. On a 10,000-file team (real Python from the stdlib and site-packages): index build time,
index size per MB of code, and the latency retrieval adds to a completion's prompt building
(p50/p95 over random cursors, in wall and in process CPU time: the machines are shared), against
building the same prompt without it in the same run.

Writes bench/results/context.json and prints a table.
Run: `.venv/bin/python bench/context.py [--steps 300] [--files 10000] [--queries 300]`;
`--cost-only` re-measures the cost part and keeps the results file's quality table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quality import BATCH, TEAM, chosen_hyperparameters, train_rows  # noqa: E402
from tailor.demo.stdlib_corpus import broad_code_files, read_text  # noqa: E402
from tailor.demo.tiny import tiny_base_cached  # noqa: E402
from tailor.stages.context.assemble import ContextQuery, assemble  # noqa: E402
from tailor.stages.context.index import CodeIndex, SourceFile, build_index  # noqa: E402
from tailor.stages.evaluate.scores import edit_similarity, exact_match  # noqa: E402
from tailor.stages.serve.engine import TailorEngine  # noqa: E402
from tailor.stages.serve.generation import GenerationRequest  # noqa: E402
from tailor.stages.serve.prompting import Prompter  # noqa: E402
from tailor.stages.train.spec import default_lora_targets  # noqa: E402
from tailor.storage import FileStore  # noqa: E402

CACHE = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))
REPO = "ledgerly"
PREFIX_CHARS, SUFFIX_CHARS = 550, 150  # what the model sees of the file (its context is 512)
BUDGET = 180  # context tokens: two signatures (about 63 tokens each as comments), within 512

_VERBS = ["settle", "reconcile", "archive", "audit", "refund", "price", "ship", "merge"]
_NOUNS = ["invoice", "ledger", "shipment", "voucher", "payout", "rebate", "parcel", "tariff"]
_PARAMS = ["account_code", "currency", "rounding", "cutoff_day", "region", "batch_size", "strict"]
_VALUES = {
    "account_code": "order.account",
    "currency": '"EUR"',
    "rounding": "2",
    "cutoff_day": "28",
    "region": "order.region",
    "batch_size": "64",
    "strict": "True",
}


def _util(i: int, rng: random.Random) -> tuple[str, list[tuple[str, list[str]]]]:
    """One util module: four functions with distinctive parameters, and their signatures."""
    defs, out = [], [f'"""Ledgerly utilities, part {i}."""\n\n']
    for verb, noun in rng.sample([(v, n) for v in _VERBS for n in _NOUNS], 4):
        name = f"{verb}_{noun}_{i:02d}"
        params = rng.sample(_PARAMS, rng.randint(2, 3))
        args = ", ".join(f"{p}" for p in params)
        out.append(
            f"def {name}(order, {args}):\n"
            f'    """{verb.capitalize()} the {noun} of an order."""\n'
            f"    return order.apply({', '.join(params)})\n\n\n"
        )
        defs.append((name, params))
    return "".join(out), defs


def _service(i: int, utils: list[list[tuple[str, list[str]]]], rng: random.Random) -> str:
    """One service module: imports three functions of two utils and calls each by keyword."""
    picked = []
    for u in rng.sample(range(len(utils)), 2):
        picked += [(u, d) for d in rng.sample(utils[u], 2)]
    picked = picked[:3]
    imports = sorted({(u, d[0]) for u, d in picked})
    lines = [f'"""Ledgerly service {i}."""\n']
    lines += [f"from ledgerly.util_{u:02d} import {name}" for u, name in imports]
    lines.append("\n")
    for _u, (name, params) in picked:
        kwargs = ", ".join(f"{p}={_VALUES[p]}" for p in params)
        lines += [
            f"def handle_{name}(order):",
            f'    """Handle {name.replace("_", " ")}."""',
            "    order.check()",
            f"    result = {name}(order, {kwargs})",
            "    return result",
            "\n",
        ]
    return "\n".join(lines)


def team_repository(seed: int, utils: int = 30, services: int = 80) -> list[tuple[str, str, str]]:
    """(path, content, split): util modules (train) and service modules (a fifth held out)."""
    rng = random.Random(seed)
    made = [_util(i, rng) for i in range(utils)]
    files = [(f"ledgerly/util_{i:02d}.py", text, "train") for i, (text, _) in enumerate(made)]
    defs = [d for _, d in made]
    for i in range(services):
        split = "holdout" if i % 5 == 4 else "train"
        files.append((f"ledgerly/service_{i:02d}.py", _service(i, defs, rng), split))
    return files


def tasks(files: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Each call line of a held-out module: the middle, and its file around it."""
    out = []
    for path, text, split in files:
        if split != "holdout":
            continue
        lines = text.splitlines(keepends=True)
        for n, line in enumerate(lines):
            if line.startswith("    result = "):
                prefix = "".join(lines[:n]) + "    result = "
                middle = line[len("    result = ") :].rstrip("\n")
                suffix = "\n" + "".join(lines[n + 1 :])
                out.append({"path": path, "prefix": prefix, "middle": middle, "suffix": suffix})
    return out


def train_adapter(base: Path, store: FileStore, texts: list[str], steps: int, seed: int) -> str:
    """A LoRA adapter on the training split (bench/quality.py's loop), saved in the store."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    tokenizer, rows = train_rows(base, texts, steps, seed)
    hp = chosen_hyperparameters(base, texts, tokenizer)
    torch.manual_seed(seed)
    targets = default_lora_targets("gpt_bigcode")
    config = LoraConfig(r=hp["lora_r"], lora_alpha=hp["lora_alpha"], target_modules=targets)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=hp["learning_rate"]
    )
    model.train()
    for step in range(steps):
        batch = torch.tensor(rows[step * BATCH : (step + 1) * BATCH])
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    key = f"teams/{TEAM}/adapters/context-bench/1"
    model.save_pretrained(Path(store.root) / key)
    return key


def quality(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    files = team_repository(args.seed)
    cases = tasks(files)
    index = CodeIndex.load(
        build_index(SourceFile(REPO, p, "Python", t) for p, t, _ in files).to_bytes()
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = FileStore(Path(tmp))
        started = time.perf_counter()
        texts = [t for _, t, split in files if split == "train"]
        adapter = train_adapter(base, store, texts, args.steps, args.seed)
        train_s = time.perf_counter() - started
        engine = TailorEngine(str(base), store).start()
        engine.wait_ready(300)
        try:
            prompter = engine.prompter
            assert prompter is not None
            table = {}
            for model_name, key in (("base", None), ("adapter", adapter)):
                for retrieval in (False, True):
                    table[f"{model_name}{'+retrieval' if retrieval else ''}"] = run_cases(
                        engine, prompter, index, cases, key, retrieval
                    )
        finally:
            engine.close()
    return {"tasks": len(cases), "train_s": round(train_s, 1), "steps": args.steps, "table": table}


def run_cases(
    engine: TailorEngine,
    prompter: Prompter,
    index: CodeIndex,
    cases: list[dict[str, str]],
    adapter: str | None,
    retrieval: bool,
) -> dict[str, Any]:
    em, es, placed = [], [], []
    for case in cases:
        req = GenerationRequest(
            prompt=case["prefix"][-PREFIX_CHARS:],
            suffix=case["suffix"][:SUFFIX_CHARS],
            adapter=adapter,
            max_new_tokens=40,
            single_line=True,
            path=case["path"],
        )
        if retrieval:
            # Retrieval reads the whole file, as an editor sends it; the model sees the tail.
            query = ContextQuery(case["prefix"], case["suffix"], case["path"])
            found = assemble(index, query, BUDGET, lambda fs, r=req: prompter.context_costs(fs, r))
            req = req.model_copy(update={"context": found.files})
            placed.append(found.tokens)
        text = engine.generate(req)[0].text.strip()
        em.append(float(exact_match(text, case["middle"])))
        es.append(edit_similarity(text, case["middle"]))
    row = {
        "exact_match": round(statistics.mean(em), 4),
        "edit_similarity": round(statistics.mean(es), 4),
    }
    if placed:
        row["context_tokens_mean"] = round(statistics.mean(placed), 1)
    return row


def cost(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Build time, size and added latency on a team of `args.files` real Python files."""
    from transformers import AutoTokenizer

    paths = broad_code_files(args.files)
    team = [SourceFile("big", p.as_posix().lstrip("/"), "Python", read_text(p)) for p in paths]
    code_mb = sum(len(f.content.encode()) for f in team) / 1e6
    started = time.perf_counter()
    data = build_index(team).to_bytes()
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    index = CodeIndex.load(data)
    load_s = time.perf_counter() - started
    prompter = Prompter(AutoTokenizer.from_pretrained(base), 1 << 20)
    load_before = os.getloadavg()[0]
    times = latencies(index, prompter, team, args)
    return {
        "files": len(team),
        "code_mb": round(code_mb, 2),
        "index_build_s": round(build_s, 2),
        "index_load_s": round(load_s, 2),
        "index_mb": round(len(data) / 1e6, 2),
        "index_mb_per_code_mb": round(len(data) / 1e6 / code_mb, 3),
        "build_s_per_code_mb": round(build_s / code_mb, 3),
        "symbols": len(index.symbols),
        "chunks": index.chunks,
        "load_average_during_queries": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        **times,
    }


def latencies(
    index: CodeIndex, prompter: Prompter, team: list[SourceFile], args: argparse.Namespace
) -> dict[str, Any]:
    """Prompt building with and without retrieval at random cursors: wall time, and the
    process's CPU time (what the machine's other load does not inflate)."""
    rng = random.Random(args.seed)
    wall: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    first = None
    for _ in range(args.queries):
        f = rng.choice(team)
        cut = rng.randint(len(f.content) // 4, max(len(f.content) * 3 // 4, 1))
        prefix, suffix = f.content[:cut], f.content[cut:]
        req = GenerationRequest(prompt=prefix[-2000:], suffix=suffix[:500], path=f.path)
        t0, c0 = time.perf_counter(), time.process_time()
        prompter.prompt_ids(req)
        t1, c1 = time.perf_counter(), time.process_time()
        query = ContextQuery(prefix, suffix, f.path)
        found = assemble(index, query, 256, lambda fs, r=req: prompter.context_costs(fs, r))
        prompter.prompt_ids(req.model_copy(update={"context": found.files}))
        t2, c2 = time.perf_counter(), time.process_time()
        if first is None:
            first = (t2 - t1) * 1000  # the first query decodes files and counts tokens cold
            continue
        for times, a, b, c in ((wall, t0, t1, t2), (cpu, c0, c1, c2)):
            times["without"].append((b - a) * 1000)
            times["with"].append((c - a) * 1000)

    def pct(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        at = {q: round(ordered[int(q * (len(ordered) - 1))], 3) for q in (0.5, 0.95)}
        return {"p50": at[0.5], "p95": at[0.95]}

    def added(times: dict[str, list[float]]) -> list[float]:
        return [w - o for w, o in zip(times["with"], times["without"], strict=True)]

    return {
        "queries": len(wall["with"]),
        "first_query_ms": round(first or 0.0, 1),
        "prompt_without_retrieval_ms": pct(wall["without"]),
        "prompt_with_retrieval_ms": pct(wall["with"]),
        "retrieval_added_ms": pct(added(wall)),
        "retrieval_added_cpu_ms": pct(added(cpu)),
        "prompt_without_retrieval_cpu_ms": pct(cpu["without"]),
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--cost-only",
        action="store_true",
        help="re-measure the cost part and keep the quality table of the results file",
    )
    args = parser.parse_args()
    base = tiny_base_cached(CACHE)
    results = ROOT / "bench" / "results" / "context.json"
    out: dict[str, Any] = {
        "benchmark": "context",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": vars(args) | {"budget_tokens": BUDGET, "prefix_chars": PREFIX_CHARS},
        "baseline": "quality: the base without retrieval; latency: the same prompt built "
        "without retrieval, in the same run",
    }
    out["cost"] = cost(base, args)
    print(json.dumps(out["cost"], indent=1), flush=True)
    if args.cost_only and results.is_file():
        kept = json.loads(results.read_text())
        if "quality" in kept:  # measured earlier: its date and settings travel with it
            out["quality"] = kept["quality"] | {
                "date": kept["quality"].get("date", kept["date"]),
                "steps": kept["settings"]["steps"],
            }
    elif not args.skip_quality:
        out["quality"] = quality(base, args) | {"date": out["date"]}
        print(json.dumps(out["quality"], indent=1), flush=True)
    results.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
