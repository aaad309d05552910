"""Object store: one interface over a `file://` directory and any S3 API."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from tailor.config import Settings

PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


class StoreError(Exception):
    """An object-store key is invalid or an object is missing."""


class ObjectStore(Protocol):
    """What every stage uses to read and write artefacts by key (`teams/<team>/...`)."""

    url: str

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def upload_file(self, path: Path, key: str) -> None: ...
    def download_file(self, key: str, path: Path) -> None: ...
    def presign_get(self, key: str, expires_s: int = 3600) -> str: ...


def check_key(key: str) -> str:
    """Refuse keys that could escape their prefix (`..`, absolute, empty parts)."""
    if not key or key.startswith("/") or any(p in ("..", ".", "") for p in key.split("/")):
        raise StoreError(f"invalid object key {key!r}")
    return key


def team_prefix(team: str) -> str:
    """The only prefix a team's credentials may read: `teams/<team>/`."""
    return f"teams/{check_key(team)}/"


def _private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents, 0700 (mkdir's own mode is cut by the umask)."""
    if directory.is_dir():
        return
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    for created in missing:
        created.chmod(PRIVATE_DIR)


class FileStore:
    """Objects as files under a root directory (the embedded default).

    Private to the user whatever the umask: directories 0700, objects 0600 (they hold teams'
    code and adapters, and other local users have no business reading them).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        _private_dirs(self.root)
        self.url = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _private_tmp(self, path: Path) -> Path:
        _private_dirs(path.parent)
        tmp = path.with_name(path.name + ".part")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE))
        tmp.chmod(PRIVATE_FILE)  # a leftover .part keeps its old mode through O_CREAT
        return tmp

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._private_tmp(path)
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: readers never see half an object

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"no object at {key!r}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix.rstrip("/") if prefix.strip("/") else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if not k.endswith(".part"))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        base = self.root / prefix.rstrip("/")
        if prefix.strip("/") and base.is_dir():
            shutil.rmtree(base, ignore_errors=True)
        return len(keys)

    def upload_file(self, path: Path, key: str) -> None:
        dest = self._path(key)
        tmp = self._private_tmp(dest)
        shutil.copyfile(path, tmp)  # into the existing file: its mode stays 0600
        tmp.replace(dest)

    def download_file(self, key: str, path: Path) -> None:
        src = self._path(key)
        if not src.is_file():
            raise StoreError(f"no object at {key!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path)

    def presign_get(self, key: str, expires_s: int = 3600) -> str:
        # A local file needs no signature; the API serves it only to its own team.
        return self._path(key).as_uri()


class S3Store:
    """Objects in an S3 bucket under an optional prefix (AWS, MinIO, Ceph, moto)."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client
        self.url = f"s3://{bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise StoreError(f"no object at {key!r}") from exc
        body: bytes = obj["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1)
        return any(o["Key"] == self._key(key) for o in resp.get("Contents", []))

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            keys.extend(o["Key"][len(self.prefix) :] for o in page.get("Contents", []))
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.prefix + k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
        return len(keys)

    def upload_file(self, path: Path, key: str) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def download_file(self, key: str, path: Path) -> None:
        if not self.exists(key):
            raise StoreError(f"no object at {key!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._key(key), str(path))

    def presign_get(self, key: str, expires_s: int = 3600) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )
        return url


def open_store(url: str, settings: Settings | None = None) -> ObjectStore:
    """Open the store a URL names: `file:///dir` or `s3://bucket/prefix`."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileStore(Path(parsed.path))
    if parsed.scheme == "s3":
        import boto3  # deferred: the embedded default never needs it

        s = settings or Settings()
        client = boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint_url,
            region_name=s.s3_region,
            aws_access_key_id=s.s3_access_key_id.get_secret_value() if s.s3_access_key_id else None,
            aws_secret_access_key=(
                s.s3_secret_access_key.get_secret_value() if s.s3_secret_access_key else None
            ),
        )
        return S3Store(parsed.netloc, parsed.path, client)
    raise StoreError(f"unsupported object store URL {url!r}: use file:// or s3://")


def get_store(settings: Settings) -> ObjectStore:
    """The object store the settings name."""
    return open_store(settings.object_store_url, settings)
