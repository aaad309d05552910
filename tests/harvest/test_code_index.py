"""The code index built from a real harvest: what the harvest redacted never comes back."""

from __future__ import annotations

from pathlib import Path

from tailor.stages.context.assemble import ContextQuery, assemble
from tailor.stages.context.store import TeamIndexes, publish_index
from tailor.stages.harvest.shards import dataset_prefix
from tailor.storage import FileStore
from tests.harvest.conftest import TeamRepos
from tests.harvest.planted import SECRETS
from tests.harvest.test_pipeline import TEAM, harvest


def test_no_redacted_secret_appears_in_the_index_or_a_snippet(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "objects")
    harvest(team_repos, store, tmp_path / "cache", dataset_id="ds-1")
    publish_index(store, TEAM, [("ds-1", dataset_prefix(TEAM, "ds-1"))], ["billing", "payments"])
    index = TeamIndexes(store).get(TEAM)
    assert index is not None
    prefix = "from billing.settings import AWS_ACCESS_KEY_ID, GITHUB_TOKEN, STRIPE\n\nkey = "
    query = ContextQuery(prefix, "\n", "src/billing/client.py")

    found = assemble(index, query, 2000, lambda f: len(f.body) // 3)

    shown = [f.body for f in found.files]
    assert any("AWS_ACCESS_KEY_ID" in body for body in shown)  # the settings module is found
    everything = [index.chunk_text(c) for c in range(index.chunks)] + [s[4] for s in index.symbols]
    for value in SECRETS.values():
        assert not any(value in text for text in [*shown, *everything])
