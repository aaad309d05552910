"""A small API client for the CLI: server and token from flags, env or the config file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx


class ApiError(Exception):
    """The API answered with a problem; `str()` is what to show the person."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', 'error')}: {problem.get('detail', '')}")


def config_path() -> Path:
    """Where `tailor login` keeps the server URL and token (0600)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tailor" / "config.json"


def load_config() -> dict[str, str]:
    """The saved CLI configuration, or an empty one."""
    path = config_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def save_config(url: str, token: str) -> Path:
    """Save the server URL and token for later commands, readable by the user only."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "token": token}, fh)
    return path


class Client:
    """Calls the Tailor API; raises ApiError with the server's problem detail."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 60.0
    ) -> None:
        cfg = load_config()
        self.url = (
            url or os.environ.get("TAILOR_URL") or cfg.get("url") or "http://127.0.0.1:8000"
        ).rstrip("/")
        self.token = token or os.environ.get("TAILOR_TOKEN") or cfg.get("token")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; the decoded JSON body (None for 204)."""
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                0, {"title": "cannot reach the API", "detail": f"{self.url}: {exc}"}
            ) from exc
        if resp.status_code >= 400:
            try:
                problem = resp.json()
            except ValueError:
                problem = {"title": resp.reason_phrase, "detail": resp.text[:500]}
            raise ApiError(resp.status_code, problem)
        return None if resp.status_code == 204 else resp.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET path."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body."""
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        """PUT a JSON body."""
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        """PATCH a JSON body."""
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        """DELETE path."""
        return self.request("DELETE", path)

    def list_all(self, path: str) -> list[Any]:
        """Every item of a paginated list."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page = self.get(path, params={"cursor": cursor} if cursor else None)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items
