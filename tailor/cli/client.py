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


def save_config(url: str, token: str, refresh_token: str | None = None) -> Path:
    """Save the server URL and token (and a single sign-on session's refresh token) for later
    commands, readable by the user only."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = {"url": url, "token": token}
    if refresh_token:
        saved["refresh_token"] = refresh_token
    with os.fdopen(fd, "w") as fh:
        json.dump(saved, fh)
    return path


def forget_config() -> dict[str, str]:
    """Remove the saved token (sign-out); returns what was saved."""
    saved = load_config()
    config_path().unlink(missing_ok=True)
    return saved


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
        # A single sign-on session's token expires within the hour: refreshed on a 401, but
        # only the saved one (a token given by flag or environment is used as it is).
        saved = self.token == cfg.get("token") and cfg.get("url", "").rstrip("/") == self.url
        self._refresh = cfg.get("refresh_token") if saved else None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; the decoded JSON body (None for 204)."""
        resp = self._send(method, path, **kwargs)
        if resp.status_code == 401 and self._refresh and self._refreshed():
            resp = self._send(method, path, **kwargs)
        return self._decode(resp)

    def _refreshed(self) -> bool:
        refresh, self._refresh = self._refresh, None
        resp = self._send("POST", "/v1/auth/refresh", json={"refresh_token": refresh})
        if resp.status_code != 200:
            return False
        body = resp.json()
        save_config(self.url, body["access_token"], body["refresh_token"])
        self.token = body["access_token"]
        self._http.headers["Authorization"] = f"Bearer {self.token}"
        return True

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                0, {"title": "cannot reach the API", "detail": f"{self.url}: {exc}"}
            ) from exc

    def _decode(self, resp: httpx.Response) -> Any:
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
