"""Harvest benchmark: throughput of the full pipeline and quality/speed of near-dedup.

Corpus: this Python installation's standard library sources (every `.py` outside
site-packages, ~1,800 files / ~31 MB), committed to a git repository and served by Tailor's
smart-HTTP git server, so the full pipeline really fetches over HTTP with auth.

Measured in one run, with baselines:
- naive: walk + read + write one parquet file (no filters, no redaction, no dedup);
- full: `run_harvest` end to end (fetch, walk, filter, redact, MinHash, dedup, shards), with
  per-stage seconds from its manifest;
- near-dedup: Tailor's MinHash+LSH vs datasketch's MinHash + MinHashLSH (256 permutations,
  5-gram word shingles, Jaccard 0.7, both single-threaded), with the overlap of the sets of
  documents each flags as a near duplicate.

Writes bench/results/harvest.json and prints a table. Run: `.venv/bin/python bench/harvest.py`
(`--limit N` for a quick run on N files).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import sys
import sysconfig
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tailor.demo.gitserver import GitServer, git  # noqa: E402
from tailor.harvest.dedup import near_duplicate_of  # noqa: E402
from tailor.harvest.minhash import MinHasher  # noqa: E402
from tailor.harvest.pipeline import run_harvest  # noqa: E402
from tailor.harvest.spec import DedupConfig, HarvestSpec, RepoSource  # noqa: E402
from tailor.storage import FileStore  # noqa: E402

TOKEN = "bench-token-0123456789"
CFG = DedupConfig()  # num_perm 256, 5-grams, threshold 0.7: BigCode's settings
_WORD = re.compile(rb"[A-Za-z0-9_\x80-\xff]+")  # the same tokens as Tailor's shingles
BATCH = 64  # documents per MinHash batch, as in the pipeline's worker batches


def corpus(limit: int | None) -> list[Path]:
    """The standard library's .py files (not site-packages), sorted."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and p.is_file()
    )
    return files[:limit] if limit else files


def make_repo(files: list[Path], work: Path) -> Path:
    """A git work tree holding `files` under their stdlib-relative paths, committed."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for src in files:
        dest = work / src.relative_to(stdlib)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "stdlib")
    return work


def naive(work: Path, out: Path) -> dict[str, Any]:
    """Baseline: walk, read every .py file, write one parquet file. No quality work at all."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    paths, contents, size = [], [], 0
    for dirpath, dirnames, filenames in os.walk(work):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name.endswith(".py"):
                data = Path(dirpath, name).read_bytes()
                size += len(data)
                paths.append(os.path.relpath(os.path.join(dirpath, name), work))
                contents.append(data.decode("utf-8", "replace"))
    table = pa.table({"path": paths, "content": contents})
    pq.write_table(table, out, compression="zstd")
    seconds = time.perf_counter() - t0
    return {**_rates(len(paths), size, seconds), **_cpu(size, cpu_seconds() - c0)}


def full(
    server: GitServer, cache: Path, store_root: Path, corpus_bytes: int, n: int
) -> dict[str, Any]:
    """`run_harvest` end to end over HTTP, two worker processes."""
    source = RepoSource("stdlib", server.url("stdlib"), credential=TOKEN, credential_kind="token")
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = run_harvest(
        HarvestSpec(),
        [source],
        FileStore(store_root),
        team="bench",
        dataset_id="ds-bench",
        cache_dir=cache,
        parallelism=2,
        allow_http=True,
    )
    seconds = time.perf_counter() - t0
    stats = result.manifest["stats"]
    fetch_s = stats["seconds"].get("fetch", 0.0)
    return {
        **_rates(n, corpus_bytes, seconds),
        **_cpu(corpus_bytes, cpu_seconds() - c0),
        "after_fetch": _rates(n, corpus_bytes, seconds - fetch_s),
        "stage_seconds": stats["seconds"],
        "stage_mb_per_s": {
            k: round(corpus_bytes / 2**20 / v, 1) for k, v in stats["seconds"].items() if v > 0
        },
        "stats": stats,
    }


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (pool workers, git)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _rates(files: int, size: int, seconds: float) -> dict[str, Any]:
    return {
        "files": files,
        "mb": round(size / 2**20, 1),
        "seconds": round(seconds, 2),
        "files_per_s": round(files / seconds, 1),
        "mb_per_s": round(size / 2**20 / seconds, 1),
    }


def _cpu(size: int, cpu: float) -> dict[str, Any]:
    # MB per CPU-second: steadier than wall time when other work shares the cores.
    return {"cpu_seconds": round(cpu, 2), "mb_per_cpu_s": round(size / 2**20 / cpu, 1)}


def tailor_near_dups(docs: list[bytes]) -> tuple[set[int], float]:
    """Documents Tailor's MinHash+LSH marks as near duplicates (not their cluster's first)."""
    t0 = time.perf_counter()
    hasher = MinHasher(CFG.num_perm, CFG.ngram, CFG.seed)
    parts = [hasher.signatures(docs[i : i + BATCH]) for i in range(0, len(docs), BATCH)]
    sig = np.concatenate([p[0] for p in parts])
    has = np.concatenate([p[1] for p in parts])
    rep = near_duplicate_of(sig, has, CFG)
    seconds = time.perf_counter() - t0
    return {int(i) for i in np.flatnonzero(rep != np.arange(len(docs)))}, seconds


def shingles(doc: bytes) -> set[bytes]:
    tokens = _WORD.findall(doc)
    k = CFG.ngram
    return {b" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)}


def datasketch_near_dups(docs: list[bytes]) -> tuple[set[int], float]:
    """The same decision with datasketch: query, verify the estimate, insert if new."""
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=CFG.threshold, num_perm=CFG.num_perm)
    kept: dict[str, MinHash] = {}
    flagged = set()
    for i, doc in enumerate(docs):
        grams = shingles(doc)
        if not grams:
            continue
        m = MinHash(num_perm=CFG.num_perm, seed=CFG.seed)
        m.update_batch(list(grams))
        if any(m.jaccard(kept[key]) >= CFG.threshold for key in lsh.query(m)):
            flagged.add(i)
            continue
        kept[str(i)] = m
        lsh.insert(str(i), m)
    return flagged, time.perf_counter() - t0


def near_dedup(files: list[Path]) -> dict[str, Any]:
    docs = [p.read_bytes() for p in files]
    ours, ours_s = tailor_near_dups(docs)
    theirs, theirs_s = datasketch_near_dups(docs)
    union = ours | theirs
    return {
        "files": len(docs),
        "tailor": {
            "seconds": round(ours_s, 2),
            "files_per_s": round(len(docs) / ours_s, 1),
            "flagged": len(ours),
        },
        "datasketch": {
            "seconds": round(theirs_s, 2),
            "files_per_s": round(len(docs) / theirs_s, 1),
            "flagged": len(theirs),
        },
        "speedup": round(theirs_s / ours_s, 1),
        "flagged_by_both": len(ours & theirs),
        "overlap_jaccard": round(len(ours & theirs) / len(union), 3) if union else 1.0,
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        # Other work on the machine skews absolute figures; ratios are measured side by side.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    files = corpus(args.limit)
    corpus_bytes = sum(p.stat().st_size for p in files)
    with tempfile.TemporaryDirectory(prefix="tailor-bench-") as tmp:
        base = Path(tmp)
        work = make_repo(files, base / "work")
        naive_res = naive(work, base / "naive.parquet")
        with GitServer(base / "git", tokens={TOKEN}) as server:
            server.publish("stdlib", work)
            full_res = full(server, base / "cache", base / "store", corpus_bytes, len(files))
        dedup_res = near_dedup(files)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_1m_at_start": load_at_start},
        "corpus": {
            "what": "Python stdlib .py files (no site-packages)",
            "files": len(files),
            "mb": round(corpus_bytes / 2**20, 1),
        },
        "baseline_naive": naive_res,
        "full_pipeline": full_res,
        "near_dedup": dedup_res,
        "ratios": {
            "full_vs_naive_mb_per_s": round(full_res["mb_per_s"] / naive_res["mb_per_s"], 2),
            "near_dedup_vs_datasketch_files_per_s": dedup_res["speedup"],
        },
    }
    out = ROOT / "bench" / "results" / "harvest.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {out.relative_to(ROOT)}")


def print_table(r: dict[str, Any]) -> None:
    n, f, d = r["baseline_naive"], r["full_pipeline"], r["near_dedup"]
    rows = [
        ("naive walk+read+parquet", n["files_per_s"], n["mb_per_s"], n["seconds"]),
        ("naive (MB per CPU-second)", "", n["mb_per_cpu_s"], n["cpu_seconds"]),
        ("full pipeline (with fetch)", f["files_per_s"], f["mb_per_s"], f["seconds"]),
        ("full (MB per CPU-second)", "", f["mb_per_cpu_s"], f["cpu_seconds"]),
        (
            "full pipeline (after fetch)",
            f["after_fetch"]["files_per_s"],
            f["after_fetch"]["mb_per_s"],
            f["after_fetch"]["seconds"],
        ),
        ("near-dedup: tailor", d["tailor"]["files_per_s"], "", d["tailor"]["seconds"]),
        ("near-dedup: datasketch", d["datasketch"]["files_per_s"], "", d["datasketch"]["seconds"]),
    ]
    print(f"corpus: {r['corpus']['files']} files, {r['corpus']['mb']} MB")
    print(f"{'run':32} {'files/s':>10} {'MB/s':>8} {'s':>8}")
    for name, fps, mbs, s in rows:
        print(f"{name:32} {fps:>10} {mbs!s:>8} {s:>8}")
    print("stage seconds:", f["stage_seconds"])
    print(
        f"near-dedup flagged: tailor {d['tailor']['flagged']}, datasketch "
        f"{d['datasketch']['flagged']}, both {d['flagged_by_both']} "
        f"(overlap {d['overlap_jaccard']}); speed-up x{d['speedup']}"
    )
    s = f["stats"]
    print(f"kept {s['files_kept']} files, dropped {s['dropped']}, secrets {s['secrets_redacted']}")


if __name__ == "__main__":
    main()
