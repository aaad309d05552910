"""Hostile generated programs are contained within their limits and scored as failures."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from tailor.stages.evaluate.sandbox import Sandbox, processes_of
from tailor.stages.evaluate.spec import SandboxLimits

LIMITS = SandboxLimits(timeout_s=3.0, cpu_s=1, memory_mb=512, max_processes=8, max_file_mb=1)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS)


def test_a_correct_program_passes(sandbox: Sandbox) -> None:
    result = sandbox.run("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('ok')\n")
    assert result.outcome == "passed"
    assert result.stdout == "ok\n"


def test_a_failing_assertion_is_a_failure_with_its_reason(sandbox: Sandbox) -> None:
    result = sandbox.run("assert 1 + 1 == 3, 'arithmetic'\n")
    assert result.outcome == "failed"
    assert "AssertionError: arithmetic" in result.reason


def test_an_infinite_loop_is_killed_at_its_cpu_limit(sandbox: Sandbox) -> None:
    strict = Sandbox(LIMITS.model_copy(update={"timeout_s": 30.0}))
    result = strict.run("while True:\n    pass\n")
    assert result.outcome == "killed"
    assert "CPU" in result.reason
    assert result.wall_s < 30.0


def test_a_sleeping_program_is_killed_at_the_wall_clock_limit(sandbox: Sandbox) -> None:
    result = sandbox.run("import time\ntime.sleep(60)\n")
    assert result.outcome == "timeout"
    assert LIMITS.timeout_s <= result.wall_s < LIMITS.timeout_s + 5


def test_a_fork_bomb_is_contained_and_leaves_no_process(sandbox: Sandbox) -> None:
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    started = time.monotonic()
    result = sandbox.run(bomb)
    assert result.outcome in ("timeout", "killed")
    assert time.monotonic() - started < LIMITS.timeout_s + 12
    assert processes_of(sandbox.uid) == []


def test_a_fork_bomb_cannot_exceed_its_process_limit(sandbox: Sandbox) -> None:
    counter = (
        "import os, time\nborn = 0\n"
        "for _ in range(100):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n"
        "    born += 1\n"
        "print(born)\n"
    )
    result = sandbox.run(counter)
    assert result.outcome == "passed"
    assert int(result.stdout) == LIMITS.max_processes - 1  # the program itself is one


def test_a_memory_bomb_fails_with_a_memory_error() -> None:
    # A wall clock of its own: on a loaded machine the 3 s one can end the run before Python
    # has even started, and this test is about memory, not time.
    patient = Sandbox(LIMITS.model_copy(update={"timeout_s": 30.0}))
    result = patient.run("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))\n")
    assert result.outcome in ("failed", "killed")
    assert "memory" in result.reason.lower()


def test_writing_outside_its_directory_fails_and_touches_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    targets = [tmp_path / "escape.txt", Path("/tmp/tailor-sandbox-escape.txt"), Path.cwd() / "x"]
    tmp_path.chmod(0o777)  # even a world-writable host directory is out of its reach
    attempt = (
        "try:\n    open({!r}, 'w').write('owned')\n    print('wrote')\nexcept OSError:\n    pass\n"
    )
    program = "".join(attempt.format(str(t)) for t in targets)
    result = sandbox.run(program + "open('inside.txt', 'w').write('fine')\nraise SystemExit(3)\n")
    assert result.outcome == "failed"
    assert "wrote" not in result.stdout
    assert not any(t.exists() for t in targets)


def test_a_big_file_is_stopped_at_the_file_size_limit(sandbox: Sandbox) -> None:
    result = sandbox.run("open('big', 'w').write('x' * (8 * 2**20))\n")
    assert result.outcome in ("failed", "killed")
    assert "File too large" in result.reason or "file size" in result.reason


def test_no_network_even_to_redis_on_the_host(sandbox: Sandbox) -> None:
    with socket.create_connection(("127.0.0.1", 6379), timeout=2):
        pass  # Redis answers the host: the sandbox is what stops the program
    program = "import socket\nsocket.create_connection(('127.0.0.1', 6379), timeout=2)\n"
    result = sandbox.run(program)
    assert result.outcome == "failed"
    assert "ConnectionRefusedError" in result.reason or "unreachable" in result.reason


def test_the_environment_holds_nothing_of_the_host(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAILOR_SECRET_KEY", "s3cr3t")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    program = "import os\nprint(sorted(os.environ))\nprint(os.getuid())\nprint(os.listdir('/'))\n"
    result = sandbox.run(program)
    env, uid, root = result.stdout.splitlines()
    assert "s3cr3t" not in result.stdout
    assert "TAILOR" not in env and "AWS" not in env
    assert int(uid) not in (0, os.getuid())
    assert "root" not in root and "work" not in root and "home" not in root


def test_the_evaluator_keeps_going_after_hostile_programs(sandbox: Sandbox) -> None:
    sandbox.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    assert sandbox.run("print(sum(range(10)))\n").stdout == "45\n"


def test_a_program_runs_when_the_worker_keeps_its_files_private(sandbox: Sandbox) -> None:
    # `tailor up` runs its workers under umask 077: files they write are theirs alone.
    old = os.umask(0o077)
    try:
        result = sandbox.run("print('hi')")
    finally:
        os.umask(old)
    assert (result.outcome, result.stdout.strip()) == ("passed", "hi")
