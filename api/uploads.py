"""Receiving a multipart upload as a stream, counted, so a file over its cap is never written.

FastAPI's `UploadFile` would spool the whole body to disk before the route runs, whatever
its size. Routes that take files read `request.stream()` through this parser instead:
each part's bytes are charged to an `UploadBudget` before they are written, so reading
stops at the first byte over a cap, and the temp directory never holds more than the caps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tailor.errors import InvalidInput
from tailor.services.adapters.intake import safe_file_name
from tailor.services.adapters.uploads import UploadBudget

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 1024
MAX_PARTS = 16


@dataclass
class Received:
    """The files written (in order) and the text fields of a multipart body."""

    files: list[Path] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


class _Parts:
    """python-multipart's callbacks: where each part's bytes go."""

    def __init__(self, dest: Path, budget: UploadBudget, file_field: str, fields: set[str]):
        self.dest, self.budget, self.file_field, self.fields = dest, budget, file_field, fields
        self.received = Received()
        self.pending: list[tuple[IO[bytes], bytes]] = []
        self.open: list[IO[bytes]] = []
        self.header_name = self.header_value = b""
        self.disposition = b""
        self.name = ""
        self.text: bytearray | None = None
        self.file: IO[bytes] | None = None
        self.parts = 0
        self.ended = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value_data,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidInput(f"the form has more than {MAX_PARTS} parts")
        self.disposition, self.name, self.text, self.file = b"", "", None, None

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name = self._grown(self.header_name, data[start:end])

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value = self._grown(self.header_value, data[start:end])

    @staticmethod
    def _grown(value: bytes, more: bytes) -> bytes:
        if len(value) + len(more) > 4096:
            raise InvalidInput("a part's header is over 4 KiB")
        return value + more

    def header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def headers_finished(self) -> None:
        _kind, options = parse_options_header(self.disposition)
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        if self.name == self.file_field:
            file_name = safe_file_name(options.get(b"filename", b"").decode("utf-8", "replace"))
            path = self.dest / file_name
            if path in self.received.files:
                raise InvalidInput(f"the upload holds {file_name} twice")
            self.budget.start_file(file_name)
            self.file = path.open("wb")
            self.open.append(self.file)
            self.received.files.append(path)
        elif self.name in self.fields:
            self.text = bytearray()
        else:
            raise InvalidInput(
                f"unknown form field {self.name[:40]!r}; send {self.file_field} and "
                + ", ".join(sorted(self.fields))
            )

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            self.budget.take(end - start)  # raises before a byte over the cap is kept
            self.pending.append((self.file, data[start:end]))
        elif self.text is not None:
            if len(self.text) + end - start > MAX_FIELD_BYTES:
                raise InvalidInput(f"form field {self.name} is over {MAX_FIELD_BYTES} bytes")
            self.text += data[start:end]

    def part_end(self) -> None:
        if self.text is not None:
            try:
                value = self.text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"form field {self.name} is not UTF-8 text") from exc
            if "\x00" in value:
                raise InvalidInput("text must not contain NUL characters")
            self.received.fields[self.name] = value

    def end(self) -> None:
        self.ended = True

    def flush(self) -> None:
        """Write what the parser has accepted so far (in a worker thread: it is disk I/O)."""
        pending, self.pending = self.pending, []
        for out, chunk in pending:
            out.write(chunk)

    def close(self) -> None:
        for out in self.open:
            out.close()


def _boundary(request: Request) -> bytes:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidInput("send the upload as multipart/form-data")
    return boundary


async def receive_multipart(
    request: Request, dest: Path, budget: UploadBudget, file_field: str, fields: set[str]
) -> Received:
    """Stream the request's multipart body into `dest`, charging every file byte to `budget`."""
    boundary = _boundary(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        budget.check_declared(int(declared))  # a body over the caps is not read at all
    dest.mkdir(parents=True, exist_ok=True)
    parts = _Parts(dest, budget, file_field, fields)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
            if parts.pending:
                await run_in_threadpool(parts.flush)
        parser.finalize()
    except FormParserError as exc:
        raise InvalidInput(f"the multipart body is malformed: {exc}") from exc
    finally:
        parts.close()
    if not parts.ended:
        raise InvalidInput("the multipart body ended before its closing boundary")
    return parts.received
