"""Which git URLs a team may register: remote https/ssh only, never local or with passwords."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

SCP_STYLE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/\\].*)$")


def check_git_url(url: str, *, allow_http: bool = False) -> str:
    """Return `url` if Tailor may fetch it, else raise ValueError saying why."""
    url = url.strip()
    if not url:
        raise ValueError("repository URL is empty")
    if "::" in url.split("/")[0]:
        raise ValueError("git transport helpers such as 'ext::' are not allowed")
    if "://" not in url:
        m = SCP_STYLE.match(url)
        if not m or url.startswith(("/", ".", "~")):
            raise ValueError(
                "local paths are not allowed: use an https://, ssh:// or "
                "scp-style (git@host:org/repo.git) URL"
            )
        _check_host(m.group("host"))
        return url
    parts = urlsplit(url)
    schemes = {"https", "ssh"} | ({"http"} if allow_http else set())
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(s + "://" for s in schemes))
        raise ValueError(f"URL scheme '{parts.scheme}://' is not allowed: use {allowed}")
    if parts.password is not None:
        raise ValueError(
            "URLs with an embedded password are refused: "
            "pass the token in the 'credential' field instead"
        )
    if not parts.hostname:
        raise ValueError("repository URL has no host")
    _check_host(parts.hostname)
    return url


def _check_host(host: str) -> None:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return
    # Link-local covers cloud metadata services (169.254.169.254): never a git server.
    if addr.is_link_local or addr.is_multicast or addr.is_unspecified:
        raise ValueError(f"host {host} is not a valid git server address")
