"""Slow readers: one that stops reading is cut off after the write timeout, one that reads a
trickle is cut at its request's deadline; either way its generation is cancelled."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import FastAPI

from tailor.stages.serve.connections import write_timeout_protocol
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.spec import EndpointLimits

from .conftest import start_server

CHOICES, TOKENS = 16, 400


def open_stream(url: str) -> socket.socket:
    """A raw client that sends a streaming request and reads nothing yet (tiny receive buffer)."""
    body = json.dumps(
        {
            "model": "py",
            "prompt": "x",
            "max_tokens": TOKENS,
            "n": CHOICES,
            "stream": True,
            "ignore_eos": True,
            "stop_at_block_end": False,
        }
    ).encode()
    head = (
        "POST /v1/completions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer tok-acme\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    parts = urlsplit(url)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(head + body)
    return sock


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll until `condition` (a guard against hanging, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_client_that_stops_reading_is_disconnected_and_its_generation_cancelled(
    serve_app: Callable[..., FastAPI], engine: TailorEngine
) -> None:
    # A small kernel send buffer, so that the stall shows after kilobytes, not megabytes.
    protocol = write_timeout_protocol(0.5, send_buffer_bytes=16384)
    live = start_server(serve_app(stream_interval_s=0.0), http=protocol)
    seen = len(engine.finished)
    sock = open_stream(live.url)
    try:
        ended = wait_for(lambda: len(engine.finished) >= seen + CHOICES)
        dropped = wait_for(lambda: not live.server.server_state.connections)
    finally:
        sock.close()
        live.stop()
    finished = list(engine.finished)[seen:]
    assert ended and {f.reason for f in finished} == {"cancelled"}
    assert all(f.completion_tokens < TOKENS for f in finished)  # the rows were freed early
    assert dropped  # the server let go of the socket, unsent data and all


def read_a_trickle(sock: socket.socket) -> bytes:
    """Read 1 KB every 20 ms (writes resume, so no write timeout) until the stream's end."""
    got = b""
    while b"data: [DONE]" not in got:
        part = sock.recv(1024)
        if not part:
            break
        got += part
        time.sleep(0.02)
    return got


def test_a_client_reading_a_trickle_is_cut_at_the_requests_deadline(
    serve_app: Callable[..., FastAPI],
) -> None:
    limits = EndpointLimits(max_tokens=TOKENS, request_timeout_s=1.0)
    protocol = write_timeout_protocol(60.0, send_buffer_bytes=16384)
    live = start_server(serve_app(stream_interval_s=0.0, limits=limits), http=protocol)
    sock = open_stream(live.url)
    try:
        body = read_a_trickle(sock).decode()  # 1 MB at 50 KB/s would take 20 s and more
    finally:
        sock.close()
        live.stop()
    assert '"code":"request_timeout"' in body
    assert body.count('"finish_reason":"length"') < CHOICES
