"""At harvest time: git connects only to the address checked, and cannot scan a network."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat
from pathlib import Path

import pytest

from tailor.demo.gitserver import GitServer
from tailor.stages.harvest.addresses import NetworkPolicy, Resolver
from tailor.stages.harvest.fetch import fetch_repo, unreachable
from tailor.stages.harvest.gitrun import FetchError
from tailor.stages.harvest.spec import RepoSource
from tailor.stages.harvest.urls import UrlPolicy
from tests.harvest.conftest import LOCAL, TOKEN
from tests.harvest.servers import NotGit, Stalling, closed_port, redirecting_to
from tests.repositories.spellings import METADATA

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----"


def policy(resolve: Resolver, **kw: object) -> UrlPolicy:
    return UrlPolicy(
        allow_http=True, network=NetworkPolicy(allow_loopback=True, resolve=resolve, **kw)
    )  # type: ignore[arg-type]


def resolving(answers: dict[str, list[str]], calls: list[str] | None = None) -> Resolver:
    """A resolver answering from `answers` (a name it does not know does not resolve)."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


def failure(src: RepoSource, cache: Path, with_policy: UrlPolicy = LOCAL, timeout: int = 30) -> str:
    with pytest.raises(FetchError) as err:
        fetch_repo(src, cache, timeout_s=timeout, max_bytes=1 << 20, policy=with_policy)
    return err.value.reason


@pytest.mark.parametrize("host", METADATA)
def test_a_metadata_address_stored_in_any_spelling_is_refused_at_harvest(
    host: str, tmp_path: Path
) -> None:
    src = RepoSource(name="x", url=f"http://{host}/latest/meta-data.git")
    assert failure(src, tmp_path).startswith("repository URL refused: host")


def test_a_name_that_now_resolves_to_the_metadata_service_is_refused_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Registered while it pointed elsewhere; at harvest time its owner points it at 169.254/16.
    rebound = policy(resolving({"git.example.test": ["169.254.169.254"]}))
    src = RepoSource(
        name="x",
        url="http://git.example.test/org/repo.git",
        credential=TOKEN,
        credential_kind="token",
    )
    with caplog.at_level(logging.WARNING, logger="tailor.harvest"):
        assert failure(src, tmp_path, rebound) == unreachable(src)
    assert "metadata" in caplog.text  # the operator learns why; the team does not


def test_git_connects_to_the_address_checked_not_to_a_second_answer(
    git_server: GitServer, tmp_path: Path
) -> None:
    """DNS rebinding: the name's first answer is checked; later ones must not matter."""
    head = git_server.create_repo("app", {"a.py": "a = 1\n"})
    answers = [["127.0.0.1"], ["169.254.169.254"]]
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), 2) - 1]

    port = git_server.base_url.rsplit(":", 1)[1]
    # No resolver on this machine knows this name: git reaches the server only if it is told
    # where the name is, by the address that was checked.
    src = RepoSource(
        name="app",
        url=f"http://git.rebind.test:{port}/app.git",
        credential=TOKEN,
        credential_kind="token",
    )
    fetched = fetch_repo(src, tmp_path, timeout_s=30, max_bytes=1 << 20, policy=policy(rebinding))
    assert fetched.commit == head
    assert calls == ["git.rebind.test"]


def test_every_failure_to_reach_a_repository_reads_the_same(
    git_server: GitServer, tmp_path: Path
) -> None:
    git_server.create_repo("app", {"a.py": "a = 1\n"})
    not_git, stalling = NotGit(), Stalling()
    urls = {
        "wrong token (401)": git_server.url("app"),
        "no such repository (404)": git_server.url("ghost"),
        "closed port": f"http://127.0.0.1:{closed_port()}/app.git",
        "open port, not git": f"http://127.0.0.1:{not_git.port}/app.git",
        "port that never answers": stalling.url(),
        "name that does not resolve": "http://nowhere.example.test/app.git",
    }
    token = {"wrong token (401)": "wrong-0123456789"}
    try:
        reasons = {
            case: failure(
                RepoSource(
                    name="app", url=url, credential=token.get(case, TOKEN), credential_kind="token"
                ),
                tmp_path / str(i),
                policy(resolving({})),
                timeout=3,
            )
            for i, (case, url) in enumerate(urls.items())
        }
    finally:
        not_git.close()
        stalling.close()
    assert set(reasons.values()) == {unreachable(RepoSource(name="app", url="", credential=TOKEN))}


def test_a_redirect_is_not_followed(git_server: GitServer, tmp_path: Path) -> None:
    git_server.create_repo("app", {"a.py": "a = 1\n"})
    with redirecting_to(git_server.url("app")) as port:
        src = RepoSource(
            name="app",
            url=f"http://127.0.0.1:{port}/app.git",
            credential=TOKEN,
            credential_kind="token",
        )
        assert failure(src, tmp_path) == unreachable(src)
    assert git_server.requests == 0


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` first on PATH that writes down its arguments and fails, as a refused one does."""
    bindir, argv = tmp_path / "bin", tmp_path / "ssh-argv"
    bindir.mkdir()
    script = bindir / "ssh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv}\nexit 255\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return argv


@pytest.mark.parametrize(
    "url", ["ssh://git@git.example.test:2222/org/repo.git", "git@git.example.test:org/repo.git"]
)
def test_ssh_connects_to_the_checked_address_and_checks_the_key_by_name(
    url: str, fake_ssh: Path, tmp_path: Path
) -> None:
    servers = NetworkPolicy(
        resolve=resolving({"git.example.test": ["203.0.113.7"]}),
        allowed_networks=(ipaddress.ip_network("203.0.113.0/24"),),
    )
    src = RepoSource(name="x", url=url, credential=KEY, credential_kind="ssh_key")
    assert failure(src, tmp_path / "cache", UrlPolicy(network=servers)) == unreachable(src)
    argv = fake_ssh.read_text().splitlines()
    assert "git@203.0.113.7" in argv and "git@git.example.test" not in argv
    assert "HostKeyAlias=git.example.test" in argv and "BatchMode=yes" in argv
