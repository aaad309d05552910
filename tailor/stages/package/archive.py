"""Unpack an uploaded tar or zip: only the adapter's two files, within limits, nowhere else.

An upload is another team's bytes, so nothing in it is trusted: member names (no absolute
paths, no `..`, no links), member counts, declared sizes and the sizes actually written.
A zip's central directory is read first: members, declared sizes and ratios are judged and
`adapter_config.json` is read and checked (`on_config`) before the weights are unpacked. A
tar has no directory, so it is read as a stream and judged member by member; its config is
checked as soon as it comes. Either way only `adapter_config.json` and
`adapter_model.safetensors` are written, and their bytes are counted as they are written:
the archive stops unpacking the moment a limit is passed, whatever its headers declared.
Every uploaded directory, archived or not, is also refused here if it holds a link or a
pickle (by name or by its first bytes): the API's intake and the import job both call
`refuse_pickles`.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from tailor.stages.package.errors import (
    InvalidAdapterError,
    UnsafeArchiveError,
    UnsafeFileError,
    UploadTooLargeError,
)
from tailor.stages.package.headers import sniff_pickle
from tailor.stages.package.spec import CONFIG_FILE, WEIGHTS_FILE

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
# The file kinds torch.save and pickle write; they run code when loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
MAX_CONFIG_BYTES = 1024 * 1024
# Small members compress far better than weights do; the ratio rule starts above this.
RATIO_SLACK = 1024 * 1024
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may hold (the API builds them from settings)."""

    max_unpacked_bytes: int = 2 * 1024**3
    max_ratio: int = 100
    max_members: int = 64


@dataclass
class _Unpacked:
    """What has been written so far, and which folder the adapter's files are in."""

    archive: str
    limits: ArchiveLimits
    dest: Path
    written: int = 0
    folder: str | None = None
    seen: set[str] = field(default_factory=set)


def is_archive(path: Path) -> bool:
    """True when the upload is a file whose name says tar or zip."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def check_member_name(archive: str, name: str) -> None:
    """Refuse a member path that is absolute or climbs out with `..`."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} has an absolute path; archive the adapter files with "
            "paths relative to the adapter directory"
        )
    if ".." in parts:
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} contains '..' and would be written outside the "
            "extraction directory; archive the adapter directory without '..' in any path"
        )


def refuse_pickle_name(where: str, name: str) -> None:
    """Refuse a file whose name says pickle (torch.save writes them; loading runs code)."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UnsafeFileError(
            f"{where}{name} is a pickle-format file ({suffix}); pickles can run code when "
            "loaded and are refused. Save the adapter with safetensors "
            "(`model.save_pretrained(dir, safe_serialization=True)`) and upload "
            f"{WEIGHTS_FILE} with {CONFIG_FILE}."
        )


def refuse_pickles(root: Path) -> None:
    """Refuse links, and any pickle in the upload, by its name or by its first bytes."""
    check_no_links(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        refuse_pickle_name("", str(rel))
        with path.open("rb") as fh:
            unsafe = sniff_pickle(fh.read(8))
        if unsafe:
            raise UnsafeFileError(
                f"{rel} is {unsafe}; pickles can run code when loaded and are refused, whatever "
                "the file is called. Save the adapter with safetensors "
                "(`model.save_pretrained(dir, safe_serialization=True)`) and upload "
                f"{WEIGHTS_FILE} with {CONFIG_FILE}."
            )


def extract_archive(
    archive: Path,
    dest: Path,
    limits: ArchiveLimits | None = None,
    on_config: Callable[[bytes], object] | None = None,
) -> Path:
    """Unpack the adapter's two files of `archive` into `dest` (returned), within `limits`.

    `on_config` sees `adapter_config.json`'s bytes before the weights are unpacked (zip) or
    as soon as the stream reaches it (tar), and raises to stop.
    """
    dest.mkdir(parents=True, exist_ok=True)
    state = _Unpacked(archive.name, limits or ArchiveLimits(), dest)
    if archive.name.lower().endswith(".zip"):
        _extract_zip(archive, state, on_config)
    else:
        _extract_tar(archive, state, on_config)
    if CONFIG_FILE not in state.seen:
        raise InvalidAdapterError(
            f"{archive.name} has no {CONFIG_FILE}; a PEFT adapter is {CONFIG_FILE} plus "
            f"{WEIGHTS_FILE} (written by `model.save_pretrained(dir)`)"
        )
    return dest


def _extract_zip(
    archive: Path, state: _Unpacked, on_config: Callable[[bytes], object] | None
) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()  # the central directory: judged whole before unpacking
            _check_count(state, len(infos))
            for info in infos:
                kind = "link" if stat.S_ISLNK(info.external_attr >> 16) else "file"
                _check_member(state, info.filename, "dir" if info.is_dir() else kind, "")
            files = [i for i in infos if not i.is_dir()]
            _check_declared(state, sum(i.file_size for i in files))
            wanted: dict[str, zipfile.ZipInfo] = {}
            size = archive.stat().st_size  # a member's packed bytes cannot exceed the file's
            for info in files:
                packed = min(info.compress_size, size)
                if info.file_size > state.limits.max_ratio * packed + RATIO_SLACK:
                    _refuse_ratio(state, info.filename)
                place = _placed(state, info.filename)
                if place is not None:
                    wanted[place] = info
            if CONFIG_FILE not in wanted:
                return  # extract_archive names the missing config
            with zf.open(wanted[CONFIG_FILE]) as src:
                _unpack_config(state, src, on_config)
            if WEIGHTS_FILE in wanted:
                info = wanted[WEIGHTS_FILE]
                with zf.open(info) as src:
                    _unpack(state, src, WEIGHTS_FILE, packed=min(info.compress_size, size))
    except zipfile.BadZipFile as exc:
        raise InvalidAdapterError(f"{archive.name} is not a readable zip archive: {exc}") from exc


def _extract_tar(
    archive: Path, state: _Unpacked, on_config: Callable[[bytes], object] | None
) -> None:
    packed = archive.stat().st_size
    declared = count = 0
    try:
        # A stream: each member is judged before its data is read, and nothing is seeked.
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                count += 1
                _check_count(state, count)
                kind = "dir" if member.isdir() else "file" if member.isfile() else "other"
                kind = "link" if member.issym() or member.islnk() else kind
                _check_member(state, member.name, kind, member.linkname)
                declared += member.size
                _check_declared(state, declared)
                if declared > state.limits.max_ratio * packed + RATIO_SLACK:
                    _refuse_ratio(state, member.name)
                place = _placed(state, member.name) if kind == "file" else None
                src = tar.extractfile(member) if place else None
                if src is None:
                    continue  # not one of the adapter's files: its data is skipped, not written
                if place == CONFIG_FILE:
                    _unpack_config(state, src, on_config)
                else:
                    _unpack(state, src, WEIGHTS_FILE, packed=None)
    except tarfile.TarError as exc:
        raise InvalidAdapterError(f"{archive.name} is not a readable tar archive: {exc}") from exc


def _check_member(state: _Unpacked, name: str, kind: str, target: str) -> None:
    check_member_name(state.archive, name)
    if kind == "link":
        to = f" to {target!r}" if target else ""
        raise UnsafeArchiveError(
            f"{state.archive}: member {name!r} is a link{to}; links are refused, archive the "
            "files themselves"
        )
    if kind == "other":
        raise UnsafeArchiveError(
            f"{state.archive}: member {name!r} is not a regular file or folder"
        )
    if kind == "file":
        refuse_pickle_name(f"{state.archive}: ", name)


def _placed(state: _Unpacked, name: str) -> str | None:
    """Which adapter file a member is (at the top, or in one folder), or None to skip it."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.name not in (CONFIG_FILE, WEIGHTS_FILE) or len(path.parts) > 2:
        return None
    folder = str(path.parent)
    if state.folder is not None and folder != state.folder:
        raise InvalidAdapterError(
            f"{state.archive} holds adapter files in two folders ({state.folder} and {folder}); "
            "archive one adapter"
        )
    if path.name in state.seen:
        raise InvalidAdapterError(f"{state.archive} holds {path.name} twice; archive one adapter")
    state.folder = folder
    state.seen.add(path.name)
    return path.name


def _unpack_config(
    state: _Unpacked, src: IO[bytes], on_config: Callable[[bytes], object] | None
) -> None:
    raw = src.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise InvalidAdapterError(
            f"{state.archive}: {CONFIG_FILE} is over {MAX_CONFIG_BYTES} bytes; a LoRA config is "
            "a few hundred"
        )
    if on_config is not None:
        on_config(raw)
    (state.dest / CONFIG_FILE).write_bytes(raw)
    state.written += len(raw)


def _unpack(state: _Unpacked, src: IO[bytes], name: str, packed: int | None) -> None:
    """Copy a member, counting the bytes written: declared sizes can lie."""
    limits = state.limits
    with (state.dest / name).open("wb") as out:
        member = 0
        while chunk := src.read(CHUNK):
            member += len(chunk)
            state.written += len(chunk)
            _check_declared(state, state.written)
            if packed is not None and member > limits.max_ratio * packed + RATIO_SLACK:
                _refuse_ratio(state, name)
            out.write(chunk)


def _check_count(state: _Unpacked, count: int) -> None:
    if count > state.limits.max_members:
        raise UnsafeArchiveError(
            f"{state.archive} has more than {state.limits.max_members} members; an adapter "
            f"archive holds {CONFIG_FILE} and {WEIGHTS_FILE}"
        )


def _check_declared(state: _Unpacked, total: int) -> None:
    if total > state.limits.max_unpacked_bytes:
        raise UploadTooLargeError(
            f"{state.archive} unpacks to more than {state.limits.max_unpacked_bytes} bytes, the "
            "platform's limit; upload only adapter_model.safetensors and adapter_config.json"
        )


def _refuse_ratio(state: _Unpacked, name: str) -> None:
    raise UnsafeArchiveError(
        f"{state.archive}: member {name!r} unpacks to more than {state.limits.max_ratio} times "
        "its packed size (a zip bomb?); adapter weights barely compress, upload them as they are"
    )


def check_no_links(root: Path) -> None:
    """Refuse a directory upload that holds links: they could point anywhere on the machine."""
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise UnsafeArchiveError(
                f"{path.relative_to(root)} in the upload is a symbolic link; links are refused, "
                "upload the files themselves"
            )
