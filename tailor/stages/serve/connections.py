"""The gateway's HTTP connections: uvicorn's protocol with a write timeout for stalled readers.

A client that stops reading fills the socket's buffers; the server's writes then pause, and
an ASGI app waiting to send can neither see it nor end it (nothing times out a paused write,
and closing a socket with unsent data waits for the client). As nginx's `send_timeout` and
Go's `WriteTimeout` do, a connection whose writes stay paused for `write_timeout_s` is
aborted here: the app then sees the client disconnect, which cancels the request's
generation and frees its rows of the batch. A client reading slowly but steadily resumes the
writes and is not cut off; the request's own deadline bounds its total time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger(__name__)


def write_timeout_protocol(
    write_timeout_s: float, *, send_buffer_bytes: int | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (`http=` of uvicorn.run / Config) with a write timeout.

    `send_buffer_bytes` fixes the sockets' kernel send buffer (nginx's `listen … sndbuf=`);
    by default the kernel sizes it (up to megabytes), which delays when a stall is seen.
    """
    base: Any = AutoHTTPProtocol

    class WriteTimeoutProtocol(base):  # type: ignore[misc,valid-type]
        _stalled: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if send_buffer_bytes is not None and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._stalled is None:
                self._stalled = self.loop.call_later(write_timeout_s, self._reader_stalled)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _disarm(self) -> None:
            if self._stalled is not None:
                self._stalled.cancel()
                self._stalled = None

        def _reader_stalled(self) -> None:
            self._stalled = None
            log.info(
                "closing the connection of %s: it read nothing for %.0fs",
                self.client,
                write_timeout_s,
            )
            self.transport.abort()

    return WriteTimeoutProtocol
