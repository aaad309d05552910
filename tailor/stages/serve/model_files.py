"""Where a base model's files come from: a local directory, an s3:// URL or a hub id."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlparse

from tailor.storage import open_store


def _cache_dir() -> Path:
    home = Path(os.environ.get("TAILOR_HOME", Path.cwd() / ".tailor"))
    return home / "models"


def fetch_model(ref: str, cache_dir: Path | None = None) -> Path:
    """A local directory holding the model named by `ref` (downloaded once if remote)."""
    local = Path(ref).expanduser()
    if local.is_dir():
        return local
    if urlparse(ref).scheme == "s3":
        return _fetch_s3(ref, cache_dir or _cache_dir())
    from huggingface_hub import snapshot_download  # deferred: only hub ids need it

    return Path(snapshot_download(ref, cache_dir=str(cache_dir) if cache_dir else None))


def _fetch_s3(url: str, cache_dir: Path) -> Path:
    parsed = urlparse(url)
    store = open_store(f"s3://{parsed.netloc}")
    prefix = parsed.path.strip("/") + "/"
    dest = cache_dir / hashlib.sha256(url.encode()).hexdigest()[:16]
    for key in store.list(prefix):
        target = dest / key[len(prefix) :]
        if not target.exists():
            store.download_file(key, target)
    if not (dest / "config.json").is_file():
        raise FileNotFoundError(f"no model under {url} (config.json missing)")
    return dest
