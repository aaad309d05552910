"""FIM tasks: cut from held-out files only, at realistic places, the same for a seed."""

from __future__ import annotations

import random

import pytest

from tailor.stages.evaluate.fim_tasks import (
    DatasetError,
    Document,
    cut_block,
    cut_line,
    load_holdout,
    make_fim_tasks,
)
from tailor.storage import FileStore

from .conftest import DATASET, TEAM, house_style_files, write_dataset

SOURCE = '''import os


def load(path):
    """Read a file."""
    with open(path) as fh:
        data = fh.read()
    return data


class Box:
    def size(self):
        return 3
'''


def test_only_held_out_files_are_read(team_store: FileStore) -> None:
    docs = load_holdout(team_store, TEAM, DATASET)
    holdout = {p for p, _, s in house_style_files(40, 10) if s == "holdout"}
    assert {d.path for d in docs} == holdout


def test_a_missing_dataset_is_a_clear_error(team_store: FileStore) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_holdout(team_store, TEAM, "no-such-dataset")


def test_a_dataset_without_holdout_files_is_a_clear_error(tmp_path: object) -> None:
    store = FileStore(tmp_path / "objects")  # type: ignore[operator]
    write_dataset(store, TEAM, "all-train", [("a.py", SOURCE, "train")])
    with pytest.raises(DatasetError, match="holdout"):
        load_holdout(store, TEAM, "all-train")


def test_tasks_are_the_same_for_a_seed_and_differ_for_another(team_store: FileStore) -> None:
    docs = load_holdout(team_store, TEAM, DATASET)
    kinds = ["span", "line", "block"]
    first = make_fim_tasks(docs, 30, kinds, seed=1, context=500)
    assert make_fim_tasks(docs, 30, kinds, seed=1, context=500) == first
    assert make_fim_tasks(docs, 30, kinds, seed=2, context=500) != first


def test_every_task_puts_its_file_back_together(team_store: FileStore) -> None:
    docs = {d.path: d.content for d in load_holdout(team_store, TEAM, DATASET)}
    tasks = make_fim_tasks(list(_docs(docs)), 60, ["span", "line", "block"], seed=0, context=10**6)
    assert [t.kind for t in tasks[:6]] == ["span", "line", "block"] * 2
    for task in tasks:
        assert task.middle.strip()
        assert task.prefix + task.middle + task.suffix == docs[task.path]


def _docs(contents: dict[str, str]) -> list[Document]:
    return [Document("acme/quill", path, "python", text) for path, text in contents.items()]


def test_a_line_cut_takes_the_rest_of_one_line() -> None:
    rng = random.Random(0)
    for _ in range(50):
        cut = cut_line(SOURCE, rng)
        assert cut is not None
        start, end = cut
        assert "\n" not in SOURCE[start:end]
        assert SOURCE[end] == "\n"
        assert not (_word(SOURCE[start - 1]) and _word(SOURCE[start])), "cursor splits a word"


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def test_a_block_cut_takes_the_whole_indented_body() -> None:
    bodies = set()
    rng = random.Random(0)
    for _ in range(60):
        cut = cut_block(SOURCE, rng)
        assert cut is not None
        bodies.add(SOURCE[cut[0] : cut[1]])
    function_body = SOURCE[SOURCE.index('    """Read') : SOURCE.index("\n\n\nclass") + 1]
    assert function_body in bodies
    assert "        data = fh.read()\n" in bodies
    assert "        return 3\n" in bodies


def test_the_context_is_limited_on_both_sides() -> None:
    docs = _docs({"a.py": SOURCE * 20})
    for task in make_fim_tasks(docs, 20, ["span", "line", "block"], seed=0, context=50):
        assert len(task.prefix) <= 50
        assert len(task.suffix) <= 50


def test_kinds_no_file_offers_are_skipped_for_the_others() -> None:
    flat = _docs({"flat.py": "x = 1\ny = 2\nz = x + y\nprint(z)\n"})
    tasks = make_fim_tasks(flat, 5, ["block", "line"], seed=0, context=100)
    assert [t.kind for t in tasks] == ["line"] * 5
