"""Running the git CLI safely: isolated config, credentials only in the environment, limits.

Credentials never reach `.git/config`, the command line or an error message: an HTTPS token
travels as an `http.extraHeader` set through GIT_CONFIG_* variables, an SSH key as a 0600 file
in a private temporary directory named by GIT_SSH_COMMAND. Every run has a wall-time limit,
optionally a cap on how much a directory may grow, and its stderr is scrubbed.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tailor.harvest.spec import RepoSource

POLL_S = 0.1
# Config every git run gets, whatever the machine's global or system config says.
_BASE_CONFIG: tuple[tuple[str, str], ...] = (
    ("credential.helper", ""),  # no helper may store or supply credentials
    ("core.hooksPath", os.devnull),
    ("core.askPass", ""),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("advice.detachedHead", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("submodule.recurse", "false"),
    ("protocol.version", "2"),
    ("http.lowSpeedLimit", "1000"),
    ("http.lowSpeedTime", "60"),
    ("init.defaultBranch", "main"),
    ("core.symlinks", "true"),
    ("safe.directory", "*"),
)


class FetchError(Exception):
    """A repository could not be fetched; `reason` says why in words a person can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class GitAccess:
    """Environment for git runs against one remote, and the strings to scrub from output."""

    env: dict[str, str]
    secrets: list[str] = field(default_factory=list)

    def scrub(self, text: str) -> str:
        """`text` with every credential (and its encodings) replaced by `***`."""
        for s in sorted(self.secrets, key=len, reverse=True):
            if s:
                text = text.replace(s, "***")
        return text


def _base_env(extra_config: list[tuple[str, str]], allow_http: bool) -> dict[str, str]:
    # Drop inherited GIT_* (GIT_DIR, GIT_TRACE_CURL would print headers) and SSH askpass.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSH_ASKPASS"))}
    config = [*_BASE_CONFIG, *extra_config]
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            # Also binds redirects and submodules: never file://, ext:: or git://.
            "GIT_ALLOW_PROTOCOL": "http:https:ssh" if allow_http else "https:ssh",
            "LC_ALL": "C",
            "GIT_CONFIG_COUNT": str(len(config)),
        }
    )
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _token_parts(credential: str) -> tuple[str, str]:
    # `user:token` names the user (GitLab deploy tokens); a bare token works on GitHub/Gitea.
    user, sep, token = credential.strip().partition(":")
    return (user, token) if sep and user and token else ("x-access-token", credential.strip())


def credential_strings(source: RepoSource) -> list[str]:
    """Every form in which `source`'s credential could show up in a message."""
    cred = (source.credential or "").strip()
    if not cred:
        return []
    if source.credential_kind == "ssh_key":
        lines = [line.strip() for line in cred.splitlines() if len(line.strip()) >= 8]
        return [cred, *lines]
    user, token = _token_parts(cred)
    basic = base64.b64encode(f"{user}:{token}".encode()).decode()
    return [cred, token, basic]


def scrub(text: str, source: RepoSource) -> str:
    """`text` without `source`'s credential in any form."""
    return GitAccess({}, credential_strings(source)).scrub(text)


@contextmanager
def git_access(
    source: RepoSource, known_hosts: Path, timeout_s: int, *, allow_http: bool = False
) -> Iterator[GitAccess]:
    """The environment for fetching `source`, with its credential; cleans up after itself."""
    kind, cred = source.credential_kind, source.credential
    if not cred or kind is None:
        yield GitAccess(_base_env([], allow_http))
        return
    if kind == "token":
        user, token = _token_parts(cred)
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        header = ("http.extraHeader", f"Authorization: Basic {basic}")
        yield GitAccess(_base_env([header], allow_http), credential_strings(source))
        return
    keydir = Path(tempfile.mkdtemp(prefix="tailor-ssh-"))  # mkdtemp: 0700, ours alone
    try:
        key = keydir / "id"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(cred.strip() + "\n")
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        ssh = (
            f"ssh -i {shlex.quote(str(key))} -o IdentitiesOnly=yes -o BatchMode=yes"
            f" -o StrictHostKeyChecking=accept-new"
            f" -o UserKnownHostsFile={shlex.quote(str(known_hosts))}"
            f" -o ConnectTimeout={min(timeout_s, 30)} -F {os.devnull}"
        )
        env = _base_env([], allow_http)
        env["GIT_SSH_COMMAND"] = ssh
        yield GitAccess(env, credential_strings(source))
    finally:
        shutil.rmtree(keydir, ignore_errors=True)


def dir_bytes(path: Path) -> int:
    """Bytes of regular files under `path` (not following symlinks)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
    return total


@dataclass
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group: git's helpers (remote-https, index-pack)
    proc.wait()


def run_git(
    args: list[str],
    access: GitAccess,
    *,
    cwd: Path,
    timeout_s: float,
    watch: Path | None = None,
    max_growth: int | None = None,
) -> GitResult:
    """Run `git <args>`; FetchError when it outlives `timeout_s` or `watch` grows too much.

    Output goes to temporary files, not pipes, so a chatty git can never block on a full pipe.
    """
    base = dir_bytes(watch) if watch is not None and max_growth is not None else 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            ["git", *args], cwd=cwd, env=access.env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                _kill(proc)
                raise FetchError(
                    f"git {args[0]} took longer than {timeout_s:.0f} s and was stopped"
                )
            if watch is not None and max_growth is not None:
                grown = dir_bytes(watch) - base
                if grown > max_growth:
                    _kill(proc)
                    raise FetchError(
                        f"repository is over the size cap: the download passed "
                        f"{max_growth / 2**20:.0f} MiB and was stopped"
                    )
        out.seek(0)
        err.seek(0)
        stderr = access.scrub(err.read().decode("utf-8", "replace"))
        return GitResult(proc.returncode, out.read(), stderr)
