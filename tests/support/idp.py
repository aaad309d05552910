"""The tests' identity provider: oidc-provider (npm) under node, started and stopped here.

`tests/support/oidc` holds its script and lockfile; scripts/install runs `npm ci` there.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import RSAKey

HERE = Path(__file__).parent / "oidc"
CLIENT_ID = "tailor"
CLIENT_SECRET = "tailor-client-secret-for-tests"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signing_key() -> dict[str, Any]:
    """A fresh RSA signing key (private JWK) with its own key id."""
    key = RSAKey.generate_key(
        2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}
    )
    return dict(key.as_dict(private=True))


@dataclass
class IdentityProvider:
    """One running provider: its issuer, keys and people (login -> email, groups)."""

    root: Path
    redirect_uris: list[str]
    port: int = field(default_factory=free_port)
    keys: list[dict[str, Any]] = field(default_factory=lambda: [signing_key()])
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def users_file(self) -> Path:
        return self.root / "users.json"

    def start(self) -> IdentityProvider:
        """Write the configuration and run node until the provider says it is ready."""
        if not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(
                f"oidc-provider is not installed: run scripts/install (npm ci in {HERE})"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_people()
        config = {
            "issuer": self.issuer,
            "port": self.port,
            "keys": self.keys,
            "users": str(self.users_file),
            "cookie_key": secrets.token_hex(16),
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": self.redirect_uris,
                    "grant_types": [
                        "authorization_code",
                        "urn:ietf:params:oauth:grant-type:device_code",
                    ],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "client_secret_basic",
                }
            ],
        }
        path = self.root / "provider.json"
        path.write_text(json.dumps(config))
        # Its output goes to a file: a pipe nobody reads would fill and stall the provider.
        log = self.root / "provider.log"
        with log.open("w") as out:
            self._proc = subprocess.Popen(
                ["node", str(HERE / "provider.mjs"), str(path)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._proc.poll() is None:
            if f"ready {self.issuer}" in log.read_text():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the identity provider did not start:\n" + log.read_text())

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def rotate_keys(self) -> None:
        """Restart with a new signing key only: tokens now name a key id never seen before."""
        self.stop()
        self.keys = [signing_key()]
        self.start()

    def person(self, login: str, email: str | None, groups: list[str]) -> None:
        """Add or change a person; the provider reads this at every sign-in."""
        self.people[login] = {"groups": groups, "name": login}
        if email is not None:
            self.people[login]["email"] = email
        self._write_people()

    def _write_people(self) -> None:
        self.users_file.write_text(json.dumps(self.people))


FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
PROMPT = re.compile(r'name="prompt" value="([a-z]+)"')


def walk_to(http: httpx.Client, url: str, login: str, stop_at: str) -> str:
    """Play a person at the provider, without a browser: follow redirects, sign in as
    `login` (the development sign-in takes any password), consent, and return the first URL
    under `stop_at` (the relying party's callback), unvisited."""
    method, data = "GET", None
    for _ in range(20):
        if url.startswith(stop_at):
            return url
        resp = http.request(method, url, data=data)
        method, data = "GET", None
        if resp.is_redirect:
            url = str(resp.url.join(resp.headers["location"]))
            continue
        action, prompt = FORM_ACTION.search(resp.text), PROMPT.search(resp.text)
        if resp.status_code != 200 or action is None or prompt is None:
            raise AssertionError(
                f"unexpected page at {resp.url}: {resp.status_code} {resp.text[:300]}"
            )
        url = str(resp.url.join(html.unescape(action.group(1))))
        method = "POST"
        data = {"prompt": prompt.group(1)}
        if prompt.group(1) == "login":
            data |= {"login": login, "password": "any"}
    raise AssertionError("too many steps at the provider")
