"""Read a safetensors header without loading tensors, and recognise pickles by their bytes.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, then the raw data. Checking that header against the
file size finds a truncated upload before any loader touches it.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from tailor.stages.package.errors import InvalidAdapterError, TruncatedFileError, UnsafeFileError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the safetensors library itself enforces
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip holding a pickle


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header describes it."""

    dtype: str
    shape: tuple[int, ...]


def sniff_pickle(head: bytes) -> str | None:
    """Name the unsafe format these leading bytes start, or None.

    Pickle protocols 2-5 open with 0x80 and the protocol number; torch.save writes a zip.
    """
    if head[:4] == ZIP_MAGIC:
        return "a zip archive (torch.save format, holds a pickle)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return f"a Python pickle (protocol {head[1]})"
    return None


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Parse and check a safetensors header against the file's size; tensors by name."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        unsafe = sniff_pickle(head)
        if unsafe:
            raise UnsafeFileError(
                f"{path.name} is {unsafe}, not safetensors: pickles can run code when loaded, "
                "so Tailor refuses them. Re-save the adapter with "
                "`model.save_pretrained(dir, safe_serialization=True)` and upload "
                "adapter_model.safetensors."
            )
        if len(head) < 8:
            raise TruncatedFileError(
                f"{path.name} is truncated: {size} bytes, shorter than the 8-byte header length; "
                "upload the complete file again"
            )
        (header_len,) = struct.unpack("<Q", head)
        if header_len > MAX_HEADER_BYTES:
            raise InvalidAdapterError(
                f"{path.name} is not a safetensors file: its header length field says "
                f"{header_len} bytes (the limit is {MAX_HEADER_BYTES})"
            )
        if 8 + header_len > size:
            raise TruncatedFileError(
                f"{path.name} is truncated: its header needs {header_len} bytes but the file holds "
                f"only {size - 8} after the length field; upload the complete file again"
            )
        raw = fh.read(header_len)
    tensors, data_end = _parse_header(path.name, raw)
    data_len = size - 8 - header_len
    if data_end > data_len:
        raise TruncatedFileError(
            f"{path.name} is truncated: its header describes {data_end} bytes of tensor data but "
            f"the file holds {data_len} ({data_end - data_len} missing); upload the complete file "
            "again"
        )
    if data_end < data_len:
        raise InvalidAdapterError(
            f"{path.name} has {data_len - data_end} bytes after the last tensor its header names; "
            "it is not a well-formed safetensors file"
        )
    return tensors


def _parse_header(name: str, raw: bytes) -> tuple[dict[str, TensorInfo], int]:
    """Tensors of a header and the byte length of the data section they cover."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidAdapterError(f"{name} is not a safetensors file: header is not JSON") from exc
    if not isinstance(header, dict):
        raise InvalidAdapterError(f"{name} is not a safetensors file: header is not an object")
    header.pop("__metadata__", None)
    tensors: dict[str, TensorInfo] = {}
    ranges: list[tuple[int, int, str]] = []
    for tensor, entry in header.items():
        info, begin, end = _parse_entry(name, tensor, entry)
        tensors[tensor] = info
        ranges.append((begin, end, tensor))
    ranges.sort()
    cursor = 0
    for begin, end, tensor in ranges:
        if begin != cursor:
            raise InvalidAdapterError(
                f"{name}: tensor {tensor!r} starts at byte {begin}, expected {cursor} "
                "(tensor data must be contiguous and not overlap)"
            )
        cursor = end
    return tensors, cursor


def _parse_entry(name: str, tensor: str, entry: object) -> tuple[TensorInfo, int, int]:
    """One header entry checked: known dtype, integer shape, byte range of the right length."""
    if not isinstance(entry, dict):
        raise InvalidAdapterError(f"{name}: header entry for {tensor!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise InvalidAdapterError(f"{name}: tensor {tensor!r} has unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidAdapterError(f"{name}: tensor {tensor!r} has an invalid shape {shape!r}")
    ok = isinstance(offsets, list) and len(offsets) == 2
    if not ok or not all(isinstance(o, int) and o >= 0 for o in offsets):  # type: ignore[union-attr]
        raise InvalidAdapterError(f"{name}: tensor {tensor!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets  # type: ignore[misc]
    expected = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - begin != expected:
        raise InvalidAdapterError(
            f"{name}: tensor {tensor!r} ({dtype}, shape {shape}) needs {expected} bytes but its "
            f"data_offsets span {end - begin}"
        )
    return TensorInfo(dtype=dtype, shape=tuple(shape)), begin, end
