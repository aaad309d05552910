"""File contents straight from git's objects: `git cat-file --batch` over a bare cache.

No file of a harvested repository is ever written out: a blob goes from the object store
into memory, is read as text there, and is gone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import IO

from tailor.stages.harvest.gitrun import FetchError, git_pipe, local_env

READ_TIMEOUT_S = 600


def read_blobs(
    gitdir: Path, blobs: Iterable[str], *, timeout_s: float = READ_TIMEOUT_S
) -> Iterator[bytes | None]:
    """The contents of `blobs`, in order; None for one that is missing or not a blob.

    One `cat-file --batch` answers them all, buffered: a thread writes the ids while this one
    reads the answers, so neither side waits on the other (a round trip per file costs a
    scheduler slice each on a busy machine) and neither can block on a full pipe.
    """
    ids = list(blobs)
    args = ["cat-file", "--batch", "--buffer"]
    with git_pipe(args, local_env(), cwd=gitdir, timeout_s=timeout_s, stdin=True) as pipe:
        writer = threading.Thread(target=_write_ids, args=(pipe.stdin, ids), daemon=True)
        writer.start()
        for blob in ids:
            header = pipe.stdout.readline().split()
            if len(header) != 3:
                if not header:
                    raise FetchError(f"git cat-file ended before answering for {blob}")
                yield None  # "<id> missing" or "<id> ambiguous"
                continue
            data = pipe.stdout.read(int(header[2]))
            pipe.stdout.read(1)  # the newline after each object
            yield data if header[1] == b"blob" else None
        writer.join()
        pipe.check()


def _write_ids(stdin: IO[bytes], ids: list[str]) -> None:
    with suppress(OSError, ValueError):  # cat-file was stopped: the reader reports it
        stdin.write("".join(f"{i}\n" for i in ids).encode())
        stdin.close()
