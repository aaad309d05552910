"""The lock file's bookkeeping, stdlib only (it runs before anything is installed).

    python3 scripts/lockfile.py check       # exit 1 when pyproject.toml changed since the lock
    python3 scripts/lockfile.py stamp       # write pyproject's digest into the lock's header
    python3 scripts/lockfile.py pick NAME   # the lock's entry for one package (the installer)

The digest covers what decides the resolution: the dependency lists, the extras, the Python
range and the build backend's requirements. `scripts/lock` writes it; `scripts/test` checks it.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
DIGEST_LINE = "# pyproject-sha256: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def digest(pyproject: Path = PYPROJECT) -> str:
    """sha256 of the parts of pyproject.toml that the lock was resolved from."""
    data = tomllib.loads(pyproject.read_text())
    project = data.get("project", {})
    resolved_from = {
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "requires-python": project.get("requires-python"),
        "build-system": data.get("build-system", {}).get("requires", []),
    }
    return hashlib.sha256(json.dumps(resolved_from, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path = LOCK) -> str | None:
    """The digest the lock was stamped with, or None for a lock without one."""
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_LINE):
            return line.removeprefix(DIGEST_LINE).strip()
    return None


def check(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> str | None:
    """Why the lock does not match pyproject.toml, or None when it does."""
    if not lock.is_file():
        return f"{lock.name} is missing"
    if recorded_digest(lock) != digest(pyproject):
        return f"{lock.name} was not made from this {pyproject.name} (its dependencies changed)"
    return None


def stamp(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> None:
    """Put pyproject's digest on the lock's first line, replacing an older one."""
    lines = [ln for ln in lock.read_text().splitlines() if not ln.startswith(DIGEST_LINE)]
    lines.insert(0, DIGEST_LINE + digest(pyproject))
    lock.write_text("\n".join(lines) + "\n")


def entries(lock: Path = LOCK) -> dict[str, str]:
    """Each locked package's entry (its pin and hash lines), by normalized name."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = found.setdefault(normalize(match.group(1)), [])
        elif not line.startswith(" "):
            current = None
        if current is not None and not line.lstrip().startswith("#"):
            current.append(line)
    return {name: "\n".join(body) + "\n" for name, body in found.items()}


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "check":
        problem = check()
        if problem:
            print(
                f"{problem}: run scripts/lock and commit requirements.lock with pyproject.toml",
                file=sys.stderr,
            )
            return 1
        return 0
    if command == "stamp":
        stamp()
        return 0
    if command == "pick" and len(argv) == 2:
        entry = entries().get(normalize(argv[1]))
        if entry is None:
            print(f"{argv[1]} is not in {LOCK.name}", file=sys.stderr)
            return 1
        sys.stdout.write(entry)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
