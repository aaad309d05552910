"""Fill-in-the-middle tasks cut from the held-out split of a team's dataset.

Cuts fall where an IDE asks for completions: a random span inside the code, the rest of
a line after the cursor, or the whole body of an indented block (a function, a loop, a
brace block). The same seed always gives the same tasks, so base and adapter, and two
evaluations of different adapters, are scored on identical work.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tailor.stages.evaluate.spec import FimCut
from tailor.stages.train.data import read_manifest
from tailor.stages.train.errors import DatasetError as TrainDatasetError
from tailor.storage import ObjectStore

HOLDOUT = "holdout"
_BLOCK_OPENER = re.compile(r"(:|\{|=>|\bdo|\bthen)\s*(#.*|//.*)?$")
_MAX_BLOCK_LINES = 12
_MAX_BLOCK_CHARS = 600
_SPAN_CHARS = (4, 96)
_ATTEMPTS = 20  # tries to find a cut of a kind in random documents before giving up on it


class DatasetError(Exception):
    """The dataset is missing, malformed, or has no held-out code to cut tasks from."""


@dataclass(frozen=True)
class Document:
    """One held-out source file."""

    repo: str
    path: str
    language: str
    content: str


@dataclass(frozen=True)
class FimTask:
    """A fill-in-the-middle task: the model sees prefix and suffix and must write middle."""

    task_id: str
    kind: FimCut
    repo: str
    path: str
    language: str
    prefix: str
    middle: str
    suffix: str


def load_holdout(store: ObjectStore, team: str, dataset_id: str) -> list[Document]:
    """Held-out documents of a team's dataset, in a stable order (repo, path)."""
    import pyarrow.parquet as pq  # deferred: only evaluation and training need pyarrow

    try:
        manifest = read_manifest(store, team, dataset_id)
    except TrainDatasetError as exc:
        raise DatasetError(str(exc)) from exc
    columns = ["repo", "path", "language", "content", "split"]
    docs: list[Document] = []
    for shard in manifest.shards:
        table = pq.read_table(io.BytesIO(store.get_bytes(shard.key)))
        if missing := [c for c in columns if c not in table.column_names]:
            raise DatasetError(f"shard {shard.key} lacks the columns {missing}")
        for row in table.select(columns).to_pylist():
            if row["split"] == HOLDOUT and row["content"]:
                docs.append(Document(row["repo"], row["path"], row["language"], row["content"]))
    if not docs:
        raise DatasetError(
            f"dataset {dataset_id!r} has no held-out files (split == 'holdout'): harvest it "
            "with a holdout_fraction above 0"
        )
    return sorted(docs, key=lambda d: (d.repo, d.path))


def cut_span(text: str, rng: random.Random) -> tuple[int, int] | None:
    """A random span of a few to ~100 characters, widened to whole words at both ends."""
    if len(text.strip()) < 2 * _SPAN_CHARS[0]:
        return None
    start = rng.randrange(0, len(text) - _SPAN_CHARS[0])
    end = min(len(text), start + rng.randint(*_SPAN_CHARS))
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return (start, end) if text[start:end].strip() else None


def cut_line(text: str, rng: random.Random) -> tuple[int, int] | None:
    """The rest of a non-blank line from a cursor placed after its indentation."""
    lines = _line_spans(text)
    candidates = [(s, e) for s, e in lines if len(text[s:e].strip()) >= 4]
    if not candidates:
        return None
    start, end = rng.choice(candidates)
    content_start = start + len(text[start:end]) - len(text[start:end].lstrip())
    # Cursor at a token boundary: before a character that starts a word or symbol.
    cursors = [i for i in range(content_start, end - 1) if _starts_token(text, i)]
    if not cursors:
        return None
    cursor = rng.choice(cursors)
    return (cursor, end) if text[cursor:end].strip() else None


def cut_block(text: str, rng: random.Random) -> tuple[int, int] | None:
    """The body of an indented block: the lines under a header ending in `:` or `{`."""
    lines = _line_spans(text)
    blocks = [b for i in range(len(lines)) if (b := _block_body(text, lines, i)) is not None]
    return rng.choice(blocks) if blocks else None


_CUTTERS = {"span": cut_span, "line": cut_line, "block": cut_block}


def make_fim_tasks(
    documents: Sequence[Document], count: int, kinds: Sequence[FimCut], *, seed: int, context: int
) -> list[FimTask]:
    """`count` tasks, kinds used in turn, each from a random document; same seed, same tasks."""
    if not documents:
        raise DatasetError("no documents to cut FIM tasks from")
    rng = random.Random(seed)
    tasks: list[FimTask] = []
    live = list(dict.fromkeys(kinds))
    while len(tasks) < count and live:
        kind = live[len(tasks) % len(live)]
        task = _cut_one(documents, kind, rng, context, len(tasks))
        if task is None:
            live.remove(kind)  # no document offers this cut: use the other kinds
        else:
            tasks.append(task)
    if not tasks:
        raise DatasetError("the held-out files are too small to cut any FIM task from")
    return tasks


def _cut_one(
    documents: Sequence[Document], kind: FimCut, rng: random.Random, context: int, index: int
) -> FimTask | None:
    for _ in range(_ATTEMPTS):
        doc = documents[rng.randrange(len(documents))]
        cut = _CUTTERS[kind](doc.content, rng)
        if cut is None:
            continue
        start, end = cut
        return FimTask(
            task_id=f"{kind}-{index:05d}",
            kind=kind,
            repo=doc.repo,
            path=doc.path,
            language=doc.language,
            prefix=doc.content[max(0, start - context) : start],
            middle=doc.content[start:end],
            suffix=doc.content[end : end + context],
        )
    return None


def _line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, end excluding the newline."""
    spans, pos = [], 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def _starts_token(text: str, i: int) -> bool:
    if text[i].isspace():
        return False
    prev = text[i - 1]
    word = text[i].isalnum() or text[i] == "_"
    return not (word and (prev.isalnum() or prev == "_"))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _block_body(text: str, lines: list[tuple[int, int]], i: int) -> tuple[int, int] | None:
    """Span of the lines indented under header line i, or None if it opens no small block."""
    header = text[lines[i][0] : lines[i][1]]
    if not header.strip() or not _BLOCK_OPENER.search(header.rstrip()):
        return None
    depth, last = _indent(header), None
    for j in range(i + 1, len(lines)):
        line = text[lines[j][0] : lines[j][1]]
        if not line.strip():
            continue
        if _indent(line) <= depth:
            break
        if j - i > _MAX_BLOCK_LINES:
            return None  # longer than a completion an IDE would ask for
        last = j
    if last is None:
        return None
    start, end = lines[i + 1][0], lines[last][1] + 1
    end = min(end, len(text))
    return (start, end) if end - start <= _MAX_BLOCK_CHARS else None
