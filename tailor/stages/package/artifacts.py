"""Adapter versions in the object store: keys, checksums, `tailor.json`, upload and download.

A version lives under `teams/<team>/adapters/<name>/<version>/`. `tailor.json` is written
last, so a version whose manifest exists is complete; versions are never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from tailor.stages.package.errors import (
    AdapterError,
    ChecksumMismatchError,
    InvalidAdapterError,
    VersionExistsError,
    VersionNotFoundError,
)
from tailor.stages.package.spec import (
    ADAPTER_NAME_PATTERN,
    CONFIG_FILE,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    AdapterManifest,
)
from tailor.storage import ObjectStore, team_prefix

REQUIRED_FILES = (WEIGHTS_FILE, CONFIG_FILE, MANIFEST_FILE)
CHUNK = 1024 * 1024


def _check_name(name: str, version: int) -> None:
    if not re.match(ADAPTER_NAME_PATTERN, name):
        raise AdapterError(
            f"adapter name {name!r} is invalid: use lower-case letters, digits, '.', '_' or '-' "
            "(at most 63, starting with a letter or digit)"
        )
    if version < 1:
        raise AdapterError(f"adapter versions start at 1, got {version}")


def adapter_prefix(team: str, name: str, version: int) -> str:
    """`teams/<team>/adapters/<name>/<version>/`."""
    _check_name(name, version)
    return f"{team_prefix(team)}adapters/{name}/{version}/"


def export_prefix(team: str, name: str, version: int) -> str:
    """`teams/<team>/exports/<name>/<version>/`: the merged checkpoint of one version."""
    _check_name(name, version)
    return f"{team_prefix(team)}exports/{name}/{version}/"


def _content_files(directory: Path) -> list[Path]:
    """Files the checksum covers: all but `tailor.json`, which records the checksum."""
    files = (p for p in directory.rglob("*") if p.is_file())
    return sorted(p for p in files if p.relative_to(directory).as_posix() != MANIFEST_FILE)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dir_checksum(directory: Path) -> str:
    """`sha256:<hex>` over each file's relative path and content hash, in path order."""
    digest = hashlib.sha256()
    for path in _content_files(directory):
        line = f"{path.relative_to(directory).as_posix()}\0{_file_sha256(path)}\n"
        digest.update(line.encode())
    return f"sha256:{digest.hexdigest()}"


def dir_size(directory: Path) -> int:
    """Bytes of the files the checksum covers."""
    return sum(p.stat().st_size for p in _content_files(directory))


def read_manifest(directory: Path) -> AdapterManifest:
    """`tailor.json` of an adapter directory."""
    path = directory / MANIFEST_FILE
    try:
        return AdapterManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise InvalidAdapterError(f"{directory} has no {MANIFEST_FILE}") from exc
    except ValidationError as exc:
        raise InvalidAdapterError(f"{path} is not a valid adapter manifest: {exc}") from exc


def write_manifest(directory: Path, manifest: AdapterManifest) -> None:
    """Write `tailor.json` into an adapter directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")


def set_config_base(adapter_dir: Path, base_model: str, revision: str | None) -> None:
    """Name the base in adapter_config.json as the registry does (not a local temp path)."""
    path = adapter_dir / CONFIG_FILE
    config = json.loads(path.read_text())
    config.update(base_model_name_or_path=base_model, revision=revision)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def seal(directory: Path) -> AdapterManifest:
    """Record the directory's checksum and size in its manifest; the sealed manifest."""
    missing = [f for f in REQUIRED_FILES if not (directory / f).is_file()]
    if missing:
        raise InvalidAdapterError(f"adapter directory {directory} lacks {', '.join(missing)}")
    manifest = read_manifest(directory).model_copy(
        update={"checksum": dir_checksum(directory), "size_bytes": dir_size(directory)}
    )
    write_manifest(directory, manifest)
    return manifest


def upload_dir(
    store: ObjectStore, directory: Path, prefix: str, last: str | None = None
) -> list[str]:
    """Upload every file under `directory` to `prefix`; `last` (a relative path) goes last."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(directory).as_posix() == last)
    keys = []
    for path in files:
        key = prefix + path.relative_to(directory).as_posix()
        store.upload_file(path, key)
        keys.append(key)
    return keys


def download_prefix(store: ObjectStore, prefix: str, dest: Path) -> list[Path]:
    """Download every object under `prefix` into `dest`, keeping relative paths."""
    paths = []
    for key in store.list(prefix):
        path = dest / key[len(prefix) :]
        store.download_file(key, path)
        paths.append(path)
    return paths


def save_version(
    store: ObjectStore, team: str, name: str, version: int, directory: Path
) -> AdapterManifest:
    """Seal an adapter directory and store it as an immutable version; its manifest."""
    prefix = adapter_prefix(team, name, version)
    if store.exists(prefix + MANIFEST_FILE):
        raise VersionExistsError(
            f"adapter {name}@{version} of team {team} already exists; versions are immutable, "
            "save under the next version number"
        )
    manifest = seal(directory)
    upload_dir(store, directory, prefix, last=MANIFEST_FILE)
    return manifest


def load_version(
    store: ObjectStore, team: str, name: str, version: int, dest: Path
) -> AdapterManifest:
    """Download a stored version into `dest` and check it against its recorded checksum."""
    prefix = adapter_prefix(team, name, version)
    if not store.exists(prefix + MANIFEST_FILE):
        raise VersionNotFoundError(f"adapter {name}@{version} not found for team {team}")
    download_prefix(store, prefix, dest)
    manifest = read_manifest(dest)
    actual = dir_checksum(dest)
    if manifest.checksum is not None and manifest.checksum != actual:
        raise ChecksumMismatchError(
            f"adapter {name}@{version} of team {team} is corrupted in the store: recorded "
            f"{manifest.checksum}, files hash to {actual}; restore it from a backup or retrain"
        )
    return manifest


@contextmanager
def fetched_version(
    store: ObjectStore, team: str, name: str, version: int
) -> Iterator[tuple[Path, AdapterManifest]]:
    """A stored version in a temporary directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"tailor-{name}-{version}-") as tmp:
        manifest = load_version(store, team, name, version, Path(tmp))
        yield Path(tmp), manifest
