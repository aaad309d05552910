"""File contents straight from git's objects: `git cat-file --batch` over a bare cache.

No file of a harvested repository is ever written out: a blob goes from the object store
into memory, is read as text there, and is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from tailor.harvest.gitrun import FetchError, git_pipe, local_env

READ_TIMEOUT_S = 600


def read_blobs(
    gitdir: Path, blobs: Iterable[str], *, timeout_s: float = READ_TIMEOUT_S
) -> Iterator[bytes | None]:
    """The contents of `blobs`, in order; None for one that is missing or not a blob.

    One `cat-file` answers them all: each id is written and its answer read before the next
    (cat-file flushes per object), so neither side can block on a full pipe.
    """
    with git_pipe(
        ["cat-file", "--batch"], local_env(), cwd=gitdir, timeout_s=timeout_s, stdin=True
    ) as pipe:
        for blob in blobs:
            pipe.stdin.write(f"{blob}\n".encode())
            pipe.stdin.flush()
            header = pipe.stdout.readline().split()
            if len(header) != 3:
                if not header:
                    raise FetchError(f"git cat-file ended before answering for {blob}")
                yield None  # "<id> missing" or "<id> ambiguous"
                continue
            data = pipe.stdout.read(int(header[2]))
            pipe.stdout.read(1)  # the newline after each object
            yield data if header[1] == b"blob" else None
        pipe.stdin.close()
        pipe.check()
