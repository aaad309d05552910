"""Running the git CLI safely: isolated config, credentials only in the environment, limits.

Credentials never reach the repository's config, the command line or an error message: an
HTTPS token travels as an `http.extraHeader` set through GIT_CONFIG_* variables, an SSH key as
a 0600 file in a private temporary directory named by GIT_SSH_COMMAND. Every run has a
wall-time limit, optionally a cap on how much a directory may grow and a callback that stops
it, and its stderr is scrubbed. git runs in a process group of its own, and stopping it kills
the group (git's helpers too: remote-https, ssh, index-pack); when this process dies first,
the group goes with it (`_command`).
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from tailor.stages.harvest.remote import Remote
from tailor.stages.harvest.spec import RepoSource

POLL_S = 0.1
# The backstop `timeout` kills git this long after its limit, should nobody else.
BACKSTOP_GRACE_S = 5
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
    # What a fetch receives stays one pack, indexed once, rather than a loose file per object
    # (more CPU and more files for the small repositories most harvests fetch).
    ("fetch.unpackLimit", "1"),
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
    # Drop inherited GIT_* (GIT_DIR, GIT_TRACE_CURL would print headers), SSH askpass, and
    # proxies: a proxy would resolve the host itself, around the address checked and pinned.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "SSH_ASKPASS")) and not k.lower().endswith("_proxy")
    }
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


def local_env() -> dict[str, str]:
    """Environment for git commands that read the cache only (no remote, no credential)."""
    return _base_env([], allow_http=False)


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


def _ssh_command(key: Path | None, known_hosts: Path, timeout_s: int, alias: str | None) -> str:
    opts = [
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", f"ConnectTimeout={min(timeout_s, 30)}",
        "-o", "ProxyCommand=none", "-o", "ProxyJump=none",
        "-F", os.devnull,
    ]  # fmt: skip
    if key is not None:
        opts = ["-i", str(key), *opts]
    if alias is not None:  # the URL names the checked address; the key is kept by name
        opts += ["-o", f"HostKeyAlias={alias}", "-o", "CheckHostIP=no"]
    return " ".join(["ssh", *(shlex.quote(o) for o in opts)])


def _private_file(path: Path, text: str = "") -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@contextmanager
def git_access(
    source: RepoSource,
    remote: Remote,
    known_hosts: Path,
    timeout_s: int,
    *,
    allow_http: bool = False,
) -> Iterator[GitAccess]:
    """The environment for fetching `source` through `remote`; cleans up after itself."""
    kind, cred = source.credential_kind, source.credential
    config = list(remote.config)
    if kind == "token" and cred:
        user, token = _token_parts(cred)
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    access = GitAccess(_base_env(config, allow_http), credential_strings(source))
    if not remote.ssh:
        yield access
        return
    keydir = Path(tempfile.mkdtemp(prefix="tailor-ssh-"))  # mkdtemp: 0700, ours alone
    try:
        key = None
        if kind == "ssh_key" and cred:
            key = keydir / "id"
            _private_file(key, cred.strip() + "\n")
        with suppress(FileExistsError):  # another fetch of the team's may have made it
            _private_file(known_hosts)
        alias = remote.host_key_alias
        access.env["GIT_SSH_COMMAND"] = _ssh_command(key, known_hosts, timeout_s, alias)
        access.env["GIT_SSH_VARIANT"] = "ssh"
        yield access
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


class GitTimeout(FetchError):
    """A git run outlived its limit and was stopped; `received` if any data had come in."""

    def __init__(self, reason: str, received: bool) -> None:
        super().__init__(reason)
        self.received = received


class GitStopped(Exception):
    """A git run was stopped because its caller asked (a cancelled harvest)."""


def _command(args: list[str], timeout_s: float) -> list[str]:
    """`git args`, tied to this process's life where the machine has the tools for it.

    Should this process die (a worker killed) and leave git behind, git must not run on:
    util-linux's `setpriv --pdeathsig` has the group sent SIGTERM when we die (coreutils'
    `timeout` passes it on to the whole group), and `timeout` itself kills the group soon
    after the limit whatever happens.
    """
    command = ["git", *args]
    backstop, guard = _tool("timeout"), _tool("setpriv")
    if backstop is not None:
        command = [backstop, "--signal=KILL", f"{int(timeout_s + BACKSTOP_GRACE_S)}s", *command]
    if guard is not None:
        command = [guard, "--pdeathsig", "TERM", *command]
    return command


@lru_cache(maxsize=4)
def _tool(name: str) -> str | None:
    # Looked up once: searching PATH on every git run cost more than some runs themselves.
    return shutil.which(name)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group `proc` leads (git's helpers too: remote-https, ssh, index-pack).

    Only while `proc` is not reaped: its pid, the group's id, cannot have been reused.
    """
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _wait_until_gone(proc.pid)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (a zombie has ended)."""
    with suppress(OSError), os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


def _wait_until_gone(pgid: int, limit_s: float = 2.0) -> None:
    # SIGKILL lands when the kernel next schedules each process: a moment, not at once.
    deadline = time.monotonic() + limit_s
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _start(
    command: list[str], env: dict[str, str], cwd: Path, **io: Any
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True, **io)


def run_git(
    args: list[str],
    access: GitAccess,
    *,
    cwd: Path,
    timeout_s: float,
    watch: Path | None = None,
    max_growth: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> GitResult:
    """Run `git <args>` in its own process group until it ends, and no longer.

    The group is killed when git outlives `timeout_s` (GitTimeout), when `watch` grows by more
    than `max_growth` bytes (FetchError), or when `stop()` turns true (GitStopped); `stop` is
    asked every POLL_S seconds, so it should be cheap. Output goes to temporary files, not
    pipes, so a chatty git can never block on a full pipe.
    """
    base = dir_bytes(watch) if watch is not None else 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = _start(
            _command(args, timeout_s),
            access.env,
            cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while not _ended(proc):
                grown = dir_bytes(watch) - base if watch is not None else 0
                if stop is not None and stop():
                    raise GitStopped(f"git {args[0]} was stopped: the harvest was cancelled")
                if time.monotonic() > deadline:
                    raise GitTimeout(
                        f"git {args[0]} took longer than {timeout_s:.0f} s and was stopped",
                        received=grown > 0,
                    )
                if max_growth is not None and grown > max_growth:
                    raise FetchError(
                        f"repository is over the size cap: the download passed "
                        f"{max_growth / 2**20:.0f} MiB and was stopped"
                    )
        finally:
            _kill(proc)
        out.seek(0)
        err.seek(0)
        stderr = access.scrub(err.read().decode("utf-8", "replace"))
        return GitResult(proc.returncode, out.read(), stderr)


def _ended(proc: subprocess.Popen[bytes]) -> bool:
    try:
        proc.wait(timeout=POLL_S)
    except subprocess.TimeoutExpired:
        return False
    return True


class GitPipe:
    """A git command whose stdout (and stdin, if asked) are pipes; see `git_pipe`."""

    def __init__(self, proc: subprocess.Popen[bytes], args: list[str], err: IO[bytes]) -> None:
        self.proc, self.args, self._err = proc, args, err
        self.timed_out = False

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def expire(self) -> None:
        self.timed_out = True
        _kill(self.proc)

    def check(self) -> None:
        """Wait for git to end; FetchError with its stderr if it failed."""
        if self.proc.wait() != 0 and not self.timed_out:
            self._err.seek(0)
            tail = self._err.read().decode("utf-8", "replace").strip()[-300:]
            raise FetchError(f"git {self.args[0]} failed: {tail or 'no output'}")


@contextmanager
def git_pipe(
    args: list[str], env: dict[str, str], *, cwd: Path, timeout_s: float, stdin: bool = False
) -> Iterator[GitPipe]:
    """A git command to stream from, in its own process group, killed at `timeout_s` or exit.

    For local commands over the cache (`ls-tree`, `diff-tree`, `cat-file --batch`): their
    output is read as it comes, so listing a huge tree never holds it all in memory.
    """
    with tempfile.TemporaryFile() as err:
        io = {"stdin": subprocess.PIPE if stdin else subprocess.DEVNULL}
        # No parent-death guard: a local command over the cache ends by itself when this
        # process dies (its pipes close), and saves two execs per call.
        proc = _start(["git", *args], env, cwd, stdout=subprocess.PIPE, stderr=err, **io)
        pipe = GitPipe(proc, args, err)
        timer = threading.Timer(timeout_s, pipe.expire)
        timer.daemon = True
        timer.start()
        try:
            yield pipe
        finally:
            timer.cancel()
            _kill(proc)  # first: a thread writing to its stdin is then released, not stuck
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with suppress(OSError, ValueError):
                        stream.close()
        if pipe.timed_out:
            raise FetchError(f"git {args[0]} took longer than {timeout_s:.0f} s and was stopped")
