"""Where git connects: the checked address of a repository URL, pinned for git's whole run.

The host is resolved once, here; every address it resolves to must pass the network policy,
and git is then made to connect to the address checked (never a second lookup that a DNS
rebinding could answer differently):

- http(s): the URL keeps its name (TLS checks the certificate against it) and
  `http.curloptResolve=name:port:address` tells curl where the name is; redirects are not
  followed (`http.followRedirects=false`), so a server cannot send git elsewhere.
- ssh: the URL names the address, and `-o HostKeyAlias=name` keeps the server's host key
  recorded and checked under its name (`CheckHostIP=no`: the address alone proves nothing).

A name that does not resolve, or resolves to an address the policy forbids, fails with the
same words as any other failure to reach a repository; the details go to the server log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tailor.stages.harvest.addresses import Address, HostRefused, resolve_checked
from tailor.stages.harvest.urls import UrlPolicy, check_git_url, parse_git_url

log = logging.getLogger("tailor.harvest")
UNREACHABLE = "could not reach the repository or it refused the credentials"
_NO_REDIRECTS = (("http.followRedirects", "false"),)


class RemoteRefused(Exception):
    """The URL may not be fetched (its own words say why) or its host cannot be used."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Remote:
    """How git reaches one repository: the URL it is given and the config that pins it."""

    url: str
    address: Address
    config: tuple[tuple[str, str], ...] = _NO_REDIRECTS
    host_key_alias: str | None = None  # ssh: the name the server's host key is kept under

    @property
    def ssh(self) -> bool:
        return "://" not in self.url or self.url.startswith("ssh://")


def _bracketed(addr: Address) -> str:
    return str(addr) if addr.version == 4 else f"[{addr}]"


def connect_to(url: str, policy: UrlPolicy) -> Remote:
    """The checked, pinned way to reach `url`; RemoteRefused when there is none."""
    try:
        check_git_url(url, policy)
        parsed = parse_git_url(url, policy.schemes)
    except ValueError as exc:
        raise RemoteRefused(f"repository URL refused: {exc}") from exc
    if not isinstance(parsed.host, str):
        return Remote(parsed.rebuilt(), parsed.host)
    try:
        addr = resolve_checked(parsed.host, parsed.port, policy.network)
    except (OSError, UnicodeError, HostRefused) as exc:
        # The tenant gets the uniform reason: which names resolve, and to what, stays here.
        log.warning("repository host %s not used: %s", parsed.host, exc)
        raise RemoteRefused(UNREACHABLE) from exc
    if parsed.scheme == "ssh":
        return Remote(parsed.rebuilt(host=addr), addr, host_key_alias=parsed.host)
    pin = f"{parsed.host}:{parsed.port}:{_bracketed(addr)}"
    return Remote(parsed.rebuilt(), addr, (("http.curloptResolve", pin), *_NO_REDIRECTS))
