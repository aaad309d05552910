"""requirements.lock: complete, hash-pinned, and refused by scripts/test once pyproject moves on."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _locked() -> dict[str, tuple[Version, int]]:
    """Each locked package: its version and how many hashes it carries."""
    found: dict[str, tuple[Version, int]] = {}
    name = None
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match.group(1))
            found[name] = (Version(match.group(2)), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def _copy_of_the_repo(tmp_path: Path, *scripts: str) -> Path:
    """The lock, pyproject.toml and the named scripts in a scratch tree of the same layout."""
    (tmp_path / "scripts").mkdir()
    for name in ("requirements.lock", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("lock", "lockfile.py", *scripts):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    return tmp_path


def _add_dependency(repo: Path) -> None:
    pyproject = repo / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('  "pyyaml>=6",\n', '  "pyyaml>=6",\n  "left-pad>=1",\n', 1))
    assert pyproject.read_text() != text


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, timeout=60)


def test_the_committed_lock_matches_pyproject() -> None:
    result = _run(ROOT / "scripts" / "lock", "--check")
    assert result.returncode == 0, result.stderr


def test_a_dependency_added_without_relocking_fails_the_check_naming_the_command(
    tmp_path: Path,
) -> None:
    repo = _copy_of_the_repo(tmp_path)
    _add_dependency(repo)

    result = _run(repo / "scripts" / "lock", "--check")

    assert result.returncode == 1
    assert "pyproject.toml" in result.stderr and "run scripts/lock" in result.stderr


def test_scripts_test_refuses_a_stale_lock_before_installing_anything(tmp_path: Path) -> None:
    repo = _copy_of_the_repo(tmp_path, "test")
    install = repo / "scripts" / "install"
    install.write_text(f"#!/usr/bin/env bash\ntouch {repo / 'installed'}\nexit 1\n")
    install.chmod(0o755)
    _add_dependency(repo)

    result = _run(repo / "scripts" / "test")

    assert result.returncode != 0
    assert "run scripts/lock" in result.stderr
    assert not (repo / "installed").exists()


def test_every_locked_package_is_pinned_with_its_hashes_and_torch_is_the_cpu_build() -> None:
    locked = _locked()
    assert len(locked) > 100
    assert [name for name, (_, hashes) in locked.items() if hashes == 0] == []
    assert locked["torch"][0].local == "cpu"


def test_the_lock_satisfies_every_requirement_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["all"], *extras["dev"]]
    wanted += [r for extra in ("api", "worker", "train", "k8s") for r in extras[extra]]
    locked = _locked()
    unmet = []
    for line in wanted:
        req = Requirement(line)
        if req.name == "tailor":
            continue
        version = locked.get(canonicalize_name(req.name), (None, 0))[0]
        if version is None or not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{line} (locked: {version})")
    assert unmet == []
