"""Organisation-scale harvest: many repositories fanned out as parts, then one reduce.

Corpus: this machine's standard library and site-packages `.py` files, cut into `--repos`
repositories of consecutive files (a package's files stay together), served by Tailor's
smart-HTTP git server. Planted across repositories: exact copies of files and near copies (a
line added), recorded. Between two harvests some repositories are updated (a file edited,
one deleted).

Measured in one run, with baselines:
- naive: walk + read + write one parquet file over the same files (no quality work);
- single task: `run_harvest` over every repository (the path before fan-out);
- fan-out with 1 and 2 workers: `harvest_part` for every repository in a pool of 1 or 2
  processes (what the Celery part tasks run), then `reduce_parts` here; files/s, MB/s,
  scaling efficiency, MB per CPU-second (the parts' own CPU, git included, plus the reduce's)
  against naive, reduce seconds and the dedup index's bytes and traced peak memory;
- clusters: the rows and duplicate counts of fan-out and single task compared (same kept
  files = same clusters), and how many planted copies each caught;
- incremental: the updated repositories re-harvested against the first dataset.

Writes bench/results/harvest_org.json. Run: `nice .venv/bin/python bench/harvest_org.py`
(`--repos 100 --max-mb 8` for a quick run). `--index-scale N` instead builds and
deduplicates a dedup index of N synthetic signatures (bench/results/dedup_index_scale.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import sysconfig
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tailor.demo.gitserver import GitServer  # noqa: E402
from tailor.stages.harvest.addresses import NetworkPolicy  # noqa: E402
from tailor.stages.harvest.dedup import DedupIndex, select_unique  # noqa: E402
from tailor.stages.harvest.gather import FetchLimits  # noqa: E402
from tailor.stages.harvest.parts import (  # noqa: E402
    harvest_part,
    plan_parts,
    reduce_parts,
    write_plan,
)
from tailor.stages.harvest.pipeline import Reporter, run_harvest  # noqa: E402
from tailor.stages.harvest.previous import load_previous  # noqa: E402
from tailor.stages.harvest.spec import DedupConfig, HarvestSpec, RepoSource  # noqa: E402
from tailor.stages.harvest.urls import UrlPolicy  # noqa: E402
from tailor.storage import FileStore  # noqa: E402

TOKEN = "bench-token-0123456789"
TEAM = "bench"
POLICY = UrlPolicy(allow_http=True, network=NetworkPolicy(allow_loopback=True))
RESULTS = ROOT / "bench" / "results"


def cpu_seconds() -> float:
    """CPU of this process and of the children it reaped (git runs)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def corpus_files(max_mb: float) -> list[tuple[Path, Path]]:
    """(root, file) pairs: the stdlib's .py files, then site-packages', `max_mb` / 2 each."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    site = Path(sysconfig.get_paths()["purelib"])
    out = []
    for root, files in (
        (stdlib, sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)),
        (site, sorted(site.rglob("*.py"))),
    ):
        total = 0
        for p in files:
            if not p.is_file() or p.is_symlink():
                continue
            total += p.stat().st_size
            if total > max_mb / 2 * 2**20:
                break
            out.append((root, p))
    return out


def cut(files: list[tuple[Path, Path]], repos: int) -> dict[str, dict[str, bytes]]:
    """`repos` repositories of consecutive files, named r0000...; path -> content."""
    per = max(1, len(files) // repos)
    out: dict[str, dict[str, bytes]] = {}
    for r in range(repos):
        chunk = files[r * per : (r + 1) * per] if r < repos - 1 else files[r * per :]
        out[f"r{r:04d}"] = {str(p.relative_to(root)): p.read_bytes() for root, p in chunk}
    return out


Pair = tuple[tuple[str, str], ...]


def plant(repos: dict[str, dict[str, bytes]], rng: np.random.Generator) -> dict[str, list[Pair]]:
    """Exact and near copies of files into other repositories (5% of repositories each)."""
    names = sorted(repos)
    planted: dict[str, list[Pair]] = {"exact": [], "near": []}
    for kind in ("exact", "near"):
        for _ in range(max(1, len(names) // 20)):
            src, dst = rng.choice(len(names), 2, replace=False)
            files = [p for p, c in repos[names[src]].items() if 2_000 < len(c) < 50_000]
            if not files:
                continue
            path = files[int(rng.integers(len(files)))]
            content = repos[names[src]][path]
            if kind == "near":
                content += b"\n# planted near copy: one line added\n"
            repos[names[dst]][f"copied/{kind}/{path}"] = content
            planted[kind].append(((names[src], path), (names[dst], f"copied/{kind}/{path}")))
    return planted


def naive(repos: dict[str, dict[str, bytes]], work: Path) -> dict[str, Any]:
    """Baseline over the same files: walk the work trees, read every .py, one parquet file."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    paths, contents, size = [], [], 0
    for dirpath, dirnames, filenames in os.walk(work):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name.endswith(".py"):
                data = Path(dirpath, name).read_bytes()
                size += len(data)
                paths.append(os.path.join(dirpath, name))
                contents.append(data.decode("utf-8", "replace"))
    pq.write_table(pa.table({"path": paths, "content": contents}), work.parent / "naive.parquet")
    return rates(len(paths), size, time.perf_counter() - t0, cpu_seconds() - c0)


def rates(files: int, size: int, seconds: float, cpu: float) -> dict[str, Any]:
    return {
        "files": files,
        "mb": round(size / 2**20, 1),
        "seconds": round(seconds, 2),
        "files_per_s": round(files / seconds, 1),
        "mb_per_s": round(size / 2**20 / seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "mb_per_cpu_s": round(size / 2**20 / cpu, 2),
    }


def _never() -> bool:
    return False


def _part(args: tuple[Any, ...]) -> float:
    """One part in a pool process; its CPU-seconds (git's included)."""
    spec, source, root, dataset_id, index, cache = args
    c0 = cpu_seconds()
    harvest_part(
        spec, source, FileStore(root), team=TEAM, dataset_id=dataset_id, index=index,
        cache_dir=cache, limits=FetchLimits(600, 2 << 30, POLICY), cancelled=_never,
    )  # fmt: skip
    return cpu_seconds() - c0


def _warm(_: int) -> int:
    return os.getpid()


def fanout(
    sources: list[RepoSource], root: Path, cache: Path, dataset_id: str, workers: int,
    previous_ids: list[str], size: int,
) -> dict[str, Any]:  # fmt: skip
    """Parts in a pool of `workers` processes (started and warm first), then the reduce here."""
    spec, store = HarvestSpec(), FileStore(root)
    previous = load_previous(store, TEAM, previous_ids, spec.dedup)
    parts = plan_parts(sources, previous)
    write_plan(store, TEAM, dataset_id, parts)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_warm, range(workers * 4)))  # started, imports done: as Celery workers
        t0 = time.perf_counter()
        jobs = [(spec, s, root, dataset_id, i, cache) for i, s in enumerate(parts)]
        part_cpu = sum(pool.map(_part, jobs, chunksize=1))
        map_s = time.perf_counter() - t0
    c0, r0 = cpu_seconds(), time.perf_counter()
    tracemalloc.start()
    result = reduce_parts(
        spec, store, team=TEAM, dataset_id=dataset_id, parts=parts, failures={},
        previous=previous, reporter=Reporter(lambda _f, _m: None, _never),
    )  # fmt: skip
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reduce_s, reduce_cpu = time.perf_counter() - r0, cpu_seconds() - c0
    stats = result.manifest["stats"]
    n = stats["files_seen"]
    kept = stats["files_kept"]
    out = rates(n, size, map_s + reduce_s, part_cpu + reduce_cpu)
    return {
        **out,
        "workers": workers,
        "map_seconds": round(map_s, 2),
        "reduce_seconds": round(reduce_s, 2),
        "reduce_cpu_seconds": round(reduce_cpu, 2),
        "reduce_traced_peak_mb": round(peak / 2**20, 1),
        "dedup_index_mb": round((n * (spec.dedup.num_perm * 4 + 9)) / 2**20, 1),
        "files_kept": kept,
        "duplicates": stats["duplicates"],
        "manifest": result.manifest,
    }


def kept_rows(root: Path, manifest: dict[str, Any]) -> list[tuple[str, str]]:
    store = FileStore(root)
    out = []
    for shard in manifest["shards"]:
        path = root / shard["key"]
        out += [
            (r["repo"], r["path"])
            for r in pq.read_table(path, columns=["repo", "path"]).to_pylist()
        ]
    del store
    return out


def caught(rows: list[tuple[str, str]], pairs: list[tuple[tuple[str, str], ...]]) -> int:
    """Planted (original, copy) pairs of which the harvest kept one file only."""
    kept = set(rows)
    return sum(1 for pair in pairs if sum(p in kept for p in pair) == 1)


def org(args: argparse.Namespace) -> dict[str, Any]:
    load_at_start = round(os.getloadavg()[0], 2)
    rng = np.random.default_rng(7)
    repos = cut(corpus_files(args.max_mb), args.repos)
    planted = plant(repos, rng)
    pairs = planted["exact"] + planted["near"]
    size = sum(len(c) for files in repos.values() for c in files.values())
    with (
        tempfile.TemporaryDirectory(prefix="tailor-bench-org-") as tmp,
        GitServer(Path(tmp) / "git", tokens={TOKEN}) as server,
    ):
        base = Path(tmp)
        t0 = time.perf_counter()
        heads = {name: server.create_repo(name, files) for name, files in sorted(repos.items())}
        setup_s = time.perf_counter() - t0
        naive_res = naive(repos, base / "git" / ".work")

        def sources(last: dict[str, str] | None = None) -> list[RepoSource]:
            return [
                RepoSource(n, server.url(n), credential=TOKEN, credential_kind="token",
                           last_commit=(last or {}).get(n))
                for n in sorted(repos)
            ]  # fmt: skip

        t0, c0 = time.perf_counter(), cpu_seconds()
        single = run_harvest(
            HarvestSpec(), sources(), FileStore(base / "single"), team=TEAM, dataset_id="single",
            cache_dir=base / "cache-single", parallelism=2, policy=POLICY,
        )  # fmt: skip
        single_res = rates(
            single.manifest["stats"]["files_seen"], size, time.perf_counter() - t0,
            cpu_seconds() - c0,
        )  # fmt: skip
        one = fanout(sources(), base / "o1", base / "cache1", "ds-1", 1, [], size)
        two = fanout(sources(), base / "o2", base / "cache2", "ds-1", 2, [], size)
        single_rows = kept_rows(base / "single", single.manifest)
        same = {
            "rows_equal_1_worker": kept_rows(base / "o1", one["manifest"]) == single_rows,
            "rows_equal_2_workers": kept_rows(base / "o2", two["manifest"]) == single_rows,
            "duplicates_single": single.manifest["stats"]["duplicates"],
            "duplicates_fanout": two["duplicates"],
            "planted": {k: len(v) for k, v in planted.items()},
            "planted_caught_single": caught(single_rows, pairs),
            "planted_caught_fanout": caught(kept_rows(base / "o2", two["manifest"]), pairs),
        }
        updated = sorted(repos)[:: max(1, len(repos) // 10)]
        deleted = 0
        for name in updated:
            paths = sorted(p for p in repos[name] if not p.startswith("copied/"))
            edit = {paths[0]: repos[name][paths[0]] + b"\n# edited between harvests\n"}
            drop = paths[1:2]
            deleted += len(drop)
            server.commit(name, edit, delete=drop)
        again = fanout(sources(heads), base / "o2", base / "cache2", "ds-2", 2, ["ds-1"], size)
        recorded = sum(len(v) for v in again["manifest"]["deleted"].values())
        incremental = {
            "repos_updated": len(updated),
            "files_deleted": deleted,
            "deletions_recorded": recorded,
            "files_processed": again["manifest"]["stats"]["files_processed"],
            "seconds": again["seconds"],
            "reduce_seconds": again["reduce_seconds"],
        }
    for r in (one, two):
        r.pop("manifest")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_at_start": load_at_start,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "note": "2 cores shared with other engineers' work: wall-clock figures move with "
            "the load, CPU-second figures much less",
        },
        "corpus": {
            "what": "stdlib + site-packages .py files cut into repositories, planted copies",
            "repos": len(repos),
            "files": sum(len(f) for f in repos.values()),
            "mb": round(size / 2**20, 1),
            "setup_seconds": round(setup_s, 1),
        },
        "baseline_naive": naive_res,
        "single_task": single_res,
        "fanout_1_worker": one,
        "fanout_2_workers": two,
        "scaling_efficiency_2_workers": round(two["files_per_s"] / one["files_per_s"] / 2, 2),
        "fanout_vs_naive_mb_per_cpu_s": round(two["mb_per_cpu_s"] / naive_res["mb_per_cpu_s"], 2),
        "clusters": same,
        "incremental": incremental,
    }


def index_scale(n: int) -> dict[str, Any]:
    """Deduplicate N synthetic signatures (1% exact, 1% near copies): time and memory."""
    cfg = DedupConfig()
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    sigs = rng.integers(0, 2**32, (n, cfg.num_perm), dtype=np.uint32)
    exact = rng.integers(0, 2**63, n, dtype=np.uint64)
    k = n // 100
    src = rng.choice(n, 2 * k, replace=False)
    dst = rng.choice(n, 2 * k, replace=False)
    exact[dst[:k]] = exact[src[:k]]  # exact copies
    near = sigs[src[k:]].copy()
    flip = rng.random(near.shape) < 0.1  # ~90% of the signature shared: a near copy
    near[flip] = rng.integers(0, 2**32, int(flip.sum()), dtype=np.uint32)
    sigs[dst[k:]] = near
    del near, flip
    has = np.ones(n, bool)
    built = time.perf_counter() - t0
    empty = DedupIndex.empty(cfg)
    tracemalloc.start()  # what deduplication allocates beyond the index itself
    t1 = time.perf_counter()
    decision = select_unique(empty, exact, sigs, has, cfg)
    dedup_s = time.perf_counter() - t1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "signatures": n,
        "num_perm": cfg.num_perm,
        "index_mb": round((sigs.nbytes + exact.nbytes + has.nbytes) / 2**20, 1),
        "generate_seconds": round(built, 2),
        "dedup_seconds": round(dedup_s, 2),
        "dedup_peak_beyond_index_mb": round(peak / 2**20, 1),
        "exact_found": decision.count(1),
        "near_found": decision.count(2),
        "planted_exact": k,
        "planted_near": k,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--max-mb", type=float, default=40.0, help="corpus size cap")
    parser.add_argument("--index-scale", type=int, default=0, help="only the index scale run")
    args = parser.parse_args()
    if args.index_scale:
        report, name = index_scale(args.index_scale), "dedup_index_scale.json"
    else:
        report, name = org(args), "harvest_org.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
