"""Servers that are not git servers, on loopback: one that stalls, one that speaks another
protocol, one that redirects; a closed port; and a look at the git processes left behind."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil


class _Listener:
    """A loopback listener whose accept loop stops before its socket closes.

    Closing a socket that another thread blocks in `accept` on would free its descriptor for
    the next socket opened (another test's server) while that thread still holds the number.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.serve(conn)

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class Stalling(_Listener):
    """Accepts connections and never answers; `accepted` is set at the first."""

    def __init__(self) -> None:
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        self.conns.append(conn)
        self.accepted.set()

    def url(self, name: str = "app") -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def close(self) -> None:
        super().close()
        for conn in self.conns:
            conn.close()


class NotGit(_Listener):
    """An open port that answers every connection with another protocol's banner."""

    def serve(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_response(301)
        self.send_header("Location", self.target + self.path.split(".git", 1)[-1])
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@contextmanager
def redirecting_to(target: str) -> Iterator[int]:
    """A loopback HTTP server that answers everything with a 301 to `target`; its port."""
    handler = type("Handler", (_Redirect,), {"target": target})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def git_processes(root: int | None = None) -> list[psutil.Process]:
    """The git processes (and their `timeout` keeper) below process `root` (this one)."""
    kids = psutil.Process(root).children(recursive=True)
    return [p for p in kids if _name(p).startswith(("git", "timeout"))]


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return ""


def running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `procs` still running (a zombie has ended; only its parent has not looked)."""
    alive = []
    for proc in procs:
        with suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive
