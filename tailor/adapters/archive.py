"""Unpack an uploaded tar or zip without letting any member land outside its directory."""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from tailor.adapters.errors import InvalidAdapterError, UnsafeArchiveError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
MAX_UNPACKED_BYTES = 8 * 1024**3
MAX_MEMBERS = 10_000


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


def extract_archive(archive: Path, dest: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> Path:
    """Check every member, then unpack into `dest`; the directory holding the adapter."""
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.lower().endswith(".zip"):
        _extract_zip(archive, dest, max_bytes)
    else:
        _extract_tar(archive, dest, max_bytes)
    return adapter_root(dest)


def adapter_root(dest: Path) -> Path:
    """`dest`, or its one subdirectory when the archive wrapped the files in a folder."""
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def _extract_tar(archive: Path, dest: Path, max_bytes: int) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            _check_count(archive.name, len(members))
            total = 0
            for member in members:
                check_member_name(archive.name, member.name)
                if member.issym() or member.islnk():
                    raise UnsafeArchiveError(
                        f"{archive.name}: member {member.name!r} is a link to "
                        f"{member.linkname!r}; links are refused, archive the files themselves"
                    )
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(
                        f"{archive.name}: member {member.name!r} is not a regular file or folder"
                    )
                total += member.size
                _check_total(archive.name, total, max_bytes)
            # Checked above; the data filter is a second guard from the standard library.
            tar.extractall(dest, members=members, filter="data")
    except tarfile.TarError as exc:
        raise InvalidAdapterError(f"{archive.name} is not a readable tar archive: {exc}") from exc


def _extract_zip(archive: Path, dest: Path, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_count(archive.name, len(infos))
            for info in infos:
                check_member_name(archive.name, info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UnsafeArchiveError(
                        f"{archive.name}: member {info.filename!r} is a symbolic link; links are "
                        "refused, archive the files themselves"
                    )
            written = 0
            for info in infos:
                target = dest / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    # Count real bytes: a zip's declared sizes can lie (zip bombs).
                    while chunk := src.read(1024 * 1024):
                        written += len(chunk)
                        _check_total(archive.name, written, max_bytes)
                        out.write(chunk)
    except zipfile.BadZipFile as exc:
        raise InvalidAdapterError(f"{archive.name} is not a readable zip archive: {exc}") from exc


def _check_count(archive: str, count: int) -> None:
    if count > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{archive} has {count} members; the limit is {MAX_MEMBERS}")


def _check_total(archive: str, total: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise UnsafeArchiveError(
            f"{archive} unpacks to more than {max_bytes} bytes; an adapter is far smaller, "
            "upload only adapter_model.safetensors and adapter_config.json"
        )


def check_no_links(root: Path) -> None:
    """Refuse a directory upload that holds links: they could point anywhere on the machine."""
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise UnsafeArchiveError(
                f"{path.relative_to(root)} in the upload is a symbolic link; links are refused, "
                "upload the files themselves"
            )
