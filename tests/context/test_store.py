"""The team's index in the object store: built from its datasets' shards, served to its own
endpoints only, refreshed when a new index is published (a removed repository leaves it)."""

from __future__ import annotations

from pathlib import Path

from tailor.stages.context.assemble import ContextQuery, assemble
from tailor.stages.context.store import TeamIndexes, context_prefix, publish_index
from tailor.stages.harvest.shards import Row, dataset_prefix, write_shards
from tailor.storage import FileStore

PLANTED = "reconcile_ledger_qx81"  # a name only team acme's code has
ACME_CODE = f'def {PLANTED}(entries):\n    """Balance the ledger."""\n    return sum(entries)\n'


def row(repo: str, path: str, content: str) -> Row:
    return Row(repo, path, "Python", content, len(content), "c0ffee", "train")


def write_dataset(store: FileStore, team: str, uid: str, rows: list[Row]) -> tuple[str, str]:
    prefix = dataset_prefix(team, uid)
    write_shards(rows, store, prefix)
    return uid, prefix


def query_for(name: str) -> ContextQuery:
    return ContextQuery(f"from ledger import {name}\n\ntotal = {name}(", ")\n", "app/main.py")


def snippets(indexes: TeamIndexes, team: str, name: str) -> list[str]:
    index = indexes.get(team)
    if index is None:
        return []
    found = assemble(index, query_for(name), 1000, lambda fs: [len(f.body) // 3 for f in fs])
    return [f.body for f in found.files]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_symbol_planted_in_one_team_never_reaches_another_teams_context(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "objects")
    acme = write_dataset(store, "acme", "ds-a", [row("books", "ledger.py", ACME_CODE)])
    beta = write_dataset(
        store, "beta", "ds-b", [row("site", "ledger.py", "def other():\n    pass\n")]
    )
    publish_index(store, "acme", [acme], ["books"])
    publish_index(store, "beta", [beta], ["site"])
    indexes = TeamIndexes(store)

    assert any(PLANTED in s for s in snippets(indexes, "acme", PLANTED))
    assert not any(PLANTED in s for s in snippets(indexes, "beta", PLANTED))
    assert all(k.startswith(context_prefix("beta")) for k in store.list(context_prefix("beta")))


def test_a_removed_repository_leaves_the_context_at_the_next_refresh(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "objects")
    ds = write_dataset(
        store,
        "acme",
        "ds-1",
        [row("books", "ledger.py", ACME_CODE), row("site", "app.py", "def home():\n    pass\n")],
    )
    publish_index(store, "acme", [ds], ["books", "site"])
    clock = Clock()
    indexes = TeamIndexes(store, refresh_s=30, clock=clock)
    assert any(PLANTED in s for s in snippets(indexes, "acme", PLANTED))

    publish_index(store, "acme", [ds], ["site"])  # the team removed `books`
    clock.now = 31

    assert not any(PLANTED in s for s in snippets(indexes, "acme", PLANTED))
    assert len([k for k in store.list(context_prefix("acme")) if k.endswith(".npz")]) == 1


def test_a_later_dataset_holds_the_newest_copy_of_a_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "objects")
    old = write_dataset(store, "acme", "ds-1", [row("books", "ledger.py", ACME_CODE)])
    changed = ACME_CODE.replace("Balance the ledger.", "Balance the ledger, in cents.")
    new = write_dataset(store, "acme", "ds-2", [row("books", "ledger.py", changed)])

    built = publish_index(store, "acme", [new, old], ["books"])

    (body,) = snippets(TeamIndexes(store), "acme", PLANTED)[:1]
    assert "in cents" in body and built.files == 1 and built.dataset == "ds-2"


def test_a_team_without_an_index_gets_no_context(tmp_path: Path) -> None:
    assert TeamIndexes(FileStore(tmp_path / "objects")).get("acme") is None


def test_an_index_preloaded_at_start_serves_the_first_request_without_the_store(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "objects")
    publish_index(
        store,
        "acme",
        [write_dataset(store, "acme", "ds-a", [row("books", "l.py", ACME_CODE)])],
        ["books"],
    )
    indexes = TeamIndexes(store, clock=Clock())

    indexes.preload(lambda: ["acme"]).join(30)
    store.delete_prefix(context_prefix("acme"))  # from here on the store has no index to read

    assert any(PLANTED in s for s in snippets(indexes, "acme", PLANTED))
