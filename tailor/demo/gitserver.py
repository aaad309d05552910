"""A real git smart-HTTP server with HTTP basic auth, for tests and the offline quickstart.

`git http-backend` (git's own CGI program) answers the protocol; a small threaded
`http.server` in front of it checks the `Authorization` header and runs the CGI per request.
It listens on 127.0.0.1 on a free port and serves the bare repositories of one directory:

    with GitServer(tmp / "git", tokens={"s3cret"}) as server:
        server.create_repo("billing", {"app.py": "print('hi')\\n"})
        url = server.url("billing")   # http://127.0.0.1:<port>/billing.git
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Tailor Demo",
    "GIT_AUTHOR_EMAIL": "demo@tailor.invalid",
    "GIT_COMMITTER_NAME": "Tailor Demo",
    "GIT_COMMITTER_EMAIL": "demo@tailor.invalid",
}


@dataclass(frozen=True)
class Symlink:
    """A file entry that is a symbolic link to `target` (which may point anywhere)."""

    target: str


FileContent = str | bytes | Symlink


def _http_backend() -> str:
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` with a neutral identity and config; its stdout, stripped."""
    env = {**os.environ, **_GIT_ENV}
    res = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {res.stderr.decode(errors='replace')}")
    return res.stdout.decode().strip()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests and the quickstart do not want a line per request."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorized(self) -> bool:
        if self.server.tokens is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            _user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return password in self.server.tokens

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        body = self._body()
        self.server.requests += 1
        if not self._authorized():
            self.server.refused += 1
            headers = [("WWW-Authenticate", 'Basic realm="tailor-git"')]
            return self._reply(401, headers, b"authentication required\n")
        url = urlsplit(self.path)
        env = {
            **_GIT_ENV,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": "tailor",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        proc = subprocess.run([self.server.backend], input=body, env=env, capture_output=True)
        return self._relay_cgi(proc.stdout)

    def _relay_cgi(self, out: bytes) -> None:
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key.strip(), value.strip()))
        self._reply(status, headers, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, tokens: set[str] | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.tokens = root, tokens
        self.backend = _http_backend()
        self.requests = self.refused = 0


class GitServer:
    """Bare repositories under `root`, served over smart HTTP; basic auth when `tokens` given.

    Any user name is accepted with a password from `tokens` (as GitHub accepts any user name
    with a token). `tokens=None` serves anonymously.
    """

    def __init__(self, root: Path, tokens: Iterable[str] | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = _Server(self.root, set(tokens) if tokens is not None else None)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> int:
        """How many requests arrived (answered or refused)."""
        return self._server.requests

    @property
    def refused(self) -> int:
        """How many requests were answered 401."""
        return self._server.refused

    def url(self, name: str) -> str:
        """The clone URL of repository `name`."""
        return f"{self.base_url}/{name}.git"

    def start(self) -> GitServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def bare_path(self, name: str) -> Path:
        """Where the bare repository `name` lives."""
        return self.root / f"{name}.git"

    def _work_path(self, name: str) -> Path:
        return self.root / ".work" / name

    def create_repo(
        self, name: str, files: Mapping[str, FileContent], message: str = "initial commit"
    ) -> str:
        """A new repository `name` on branch main with `files` in one commit; its sha."""
        bare, work = self.bare_path(name), self._work_path(name)
        git(self.root, "init", "-q", "--bare", "-b", "main", str(bare))
        work.mkdir(parents=True)
        git(work, "init", "-q", "-b", "main")
        git(work, "remote", "add", "origin", str(bare))
        return self.commit(name, files, message=message)

    def commit(
        self,
        name: str,
        files: Mapping[str, FileContent],
        *,
        delete: Iterable[str] = (),
        message: str = "update",
        branch: str = "main",
    ) -> str:
        """Write `files`, remove `delete`, commit and push to `branch`; the new sha."""
        work = self._work_path(name)
        for rel, content in files.items():
            _write(work / rel, content)
        for rel in delete:
            (work / rel).unlink()
        git(work, "add", "-A")
        git(work, "commit", "-q", "--allow-empty", "-m", message)
        git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return git(work, "rev-parse", "HEAD")

    def publish(self, name: str, worktree: Path) -> str:
        """Serve an existing repository (e.g. `write_demo_repo`'s) as `name`; its head sha."""
        bare = self.bare_path(name)
        shutil.rmtree(bare, ignore_errors=True)
        git(self.root, "clone", "-q", "--bare", str(worktree), str(bare))
        return git(bare, "rev-parse", "HEAD")


def _write(path: Path, content: FileContent) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    if isinstance(content, Symlink):
        path.symlink_to(content.target)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
