"""git that can be stopped: a timeout, a cancel or a dead worker ends git and all its helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tailor.stages.harvest.fetch import fetch_repo
from tailor.stages.harvest.gitrun import BACKSTOP_GRACE_S, FetchError, GitStopped
from tailor.stages.harvest.spec import RepoSource
from tests.harvest.conftest import LOCAL
from tests.harvest.servers import Stalling, git_processes, running


@pytest.fixture
def stalling() -> Iterator[Stalling]:
    server = Stalling()
    yield server
    server.close()


class Watch:
    """A `stop` callback that, once git is connected, notes git's processes; `yes` to stop."""

    def __init__(self, server: Stalling, yes: bool) -> None:
        self.server, self.yes = server, yes
        self.seen: list[psutil.Process] = []
        self.names: list[str] = []
        self.asked_after_yes = 0

    def __call__(self) -> bool:
        if self.seen and self.yes:
            self.asked_after_yes += 1
        if not self.seen and self.server.accepted.is_set():
            self.seen = git_processes()
            self.names = [p.name() for p in self.seen]
        return bool(self.seen) and self.yes


def fetch_stalling(stalling: Stalling, cache: Path, timeout_s: float, watch: Watch) -> None:
    fetch_repo(RepoSource(name="app", url=stalling.url()), cache, timeout_s=timeout_s,
               max_bytes=1 << 20, policy=LOCAL, stop=watch)  # fmt: skip


def test_a_timeout_kills_git_and_every_helper_it_started(
    stalling: Stalling, tmp_path: Path
) -> None:
    watch = Watch(stalling, yes=False)
    with pytest.raises(FetchError):
        fetch_stalling(stalling, tmp_path, 2, watch)
    assert "git-remote-http" in watch.names
    assert running(watch.seen) == []


def test_a_cancel_kills_git_at_once_without_waiting_for_it(
    stalling: Stalling, tmp_path: Path
) -> None:
    watch = Watch(stalling, yes=True)
    with pytest.raises(GitStopped):
        fetch_stalling(stalling, tmp_path, 3600, watch)
    assert watch.asked_after_yes == 0  # the first yes ended the run
    assert watch.seen and running(watch.seen) == []


FETCH_IN_A_WORKER = """
import sys
from pathlib import Path
from tailor.stages.harvest.fetch import fetch_repo
from tailor.stages.harvest.spec import RepoSource
from tailor.stages.harvest.addresses import NetworkPolicy
from tailor.stages.harvest.urls import UrlPolicy
local = UrlPolicy(allow_http=True, network=NetworkPolicy(allow_loopback=True))
fetch_repo(RepoSource(name="app", url=sys.argv[1]), Path(sys.argv[2]), timeout_s=2,
           max_bytes=1 << 20, policy=local)
"""


def test_git_does_not_outlive_a_killed_worker(stalling: Stalling, tmp_path: Path) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", FETCH_IN_A_WORKER, stalling.url(), str(tmp_path)], env=os.environ
    )
    try:
        assert stalling.accepted.wait(120), "git never connected"
        orphans = git_processes(worker.pid)
    finally:
        worker.kill()  # as a worker's hard time limit or the OOM killer would
        worker.wait()
    assert orphans
    # They die with the worker (parent-death signal), at their limit (2 s + the backstop's
    # grace) at the latest; curl alone would give up only after 60 s without data.
    settle = time.monotonic() + 2 + BACKSTOP_GRACE_S + 20
    while running(orphans) and time.monotonic() < settle:
        time.sleep(0.2)
    assert running(orphans) == []
