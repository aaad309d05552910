"""Which git URLs a team may register and Tailor may fetch: remote https/ssh only.

A URL is parsed here once, strictly, into its parts; the URL git is given is rebuilt from
those parts (`GitUrl.rebuilt`), so git cannot read a host other than the one checked. Never
local paths, transport helpers, passwords in URLs, or hosts the network policy forbids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from tailor.config import Settings
from tailor.stages.harvest.addresses import (
    Address,
    HostRefused,
    NetworkPolicy,
    check_address,
    normalise_host,
)

SCP_STYLE = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._~][A-Za-z0-9._~-]*)@)?(?P<host>\[[0-9A-Fa-f:.%]+\]|[^\[\]/:@]+):(?P<path>[^/\\].*)$"
)
_NETLOC = re.compile(
    r"^(?:(?P<user>[^@:]*)(?P<password>:[^@]*)?@)?"
    r"(?P<host>\[[^\]]*\]|[^\[\]:@]*)(?::(?P<port>[0-9]{1,5}))?$"
)
_HELPER = re.compile(r"^[A-Za-z0-9+.-]+::")  # git's `<transport>::<address>` syntax
_USER = re.compile(r"^[A-Za-z0-9._~][A-Za-z0-9._~-]*$")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<netloc>[^/]*)(?P<path>/.*)?$")
DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


@dataclass(frozen=True)
class UrlPolicy:
    """What a repository URL may be: its schemes and the addresses its host may have."""

    allow_http: bool = False
    network: NetworkPolicy = field(default_factory=NetworkPolicy)

    @property
    def schemes(self) -> set[str]:
        return {"https", "ssh"} | ({"http"} if self.allow_http else set())

    @classmethod
    def of(cls, settings: Settings) -> UrlPolicy:
        """The policy the settings describe (`git_allow_*`, `git_allowed_networks`)."""
        network = NetworkPolicy.of(settings.git_allow_loopback, settings.git_allowed_networks)
        return cls(allow_http=settings.git_allow_http, network=network)


@dataclass(frozen=True)
class GitUrl:
    """A repository URL in parts; `host` is a lower-case ASCII name or an address."""

    scheme: str  # https, http or ssh (scp-style URLs are ssh)
    user: str | None
    host: str | Address
    port: int
    path: str
    scp: bool = False

    @property
    def host_text(self) -> str:
        """The host as it appears in a URL (IPv6 in brackets)."""
        if isinstance(self.host, str) or self.host.version == 4:
            return str(self.host)
        return f"[{self.host}]"

    def rebuilt(self, host: str | Address | None = None) -> str:
        """The URL from its parts, with `host` (an address git should connect to) if given."""
        url = replace(self, host=host) if host is not None else self
        user = f"{url.user}@" if url.user else ""
        if url.scp:
            return f"{user}{url.host_text}:{url.path}"
        default = DEFAULT_PORTS[url.scheme] == url.port
        port = "" if default else f":{url.port}"
        return f"{url.scheme}://{user}{url.host_text}{port}{url.path}"


def _refuse_odd_characters(url: str) -> None:
    if _HELPER.match(url):
        raise ValueError("git transport helpers such as 'ext::' are not allowed")
    if any(c.isspace() or ord(c) < 32 or c in "\\\x7f" for c in url):
        raise ValueError("repository URL contains spaces, control characters or backslashes")


def _host(raw: str) -> str | Address:
    if not raw:
        raise ValueError("repository URL has no host")
    if "%" in raw and not raw.startswith("["):
        raise ValueError(f"host {raw} is percent-encoded: write it plainly")
    return normalise_host(raw)


def _parse_scp(url: str) -> GitUrl:
    m = SCP_STYLE.match(url)
    if not m or url.startswith(("/", ".", "~")):
        raise ValueError(
            "local paths are not allowed: use an https://, ssh:// or "
            "scp-style (git@host:org/repo.git) URL"
        )
    return GitUrl("ssh", m.group("user"), _host(m.group("host")), 22, m.group("path"), scp=True)


def parse_git_url(url: str, schemes: set[str]) -> GitUrl:
    """`url` in parts; ValueError saying why when it is not a remote git URL Tailor accepts."""
    url = url.strip()
    if not url:
        raise ValueError("repository URL is empty")
    _refuse_odd_characters(url)
    if "://" not in url:
        return _parse_scp(url)
    m = _URL.match(url)
    scheme = m.group("scheme").lower() if m else url.split("://", 1)[0]
    if m is None or scheme not in schemes:
        allowed = ", ".join(sorted(s + "://" for s in schemes))
        raise ValueError(f"URL scheme '{scheme}://' is not allowed: use {allowed}")
    if any(c in url for c in "?#"):
        raise ValueError("repository URL may not have a query or a fragment")
    net = _NETLOC.match(m.group("netloc"))
    if net is None:
        raise ValueError("repository URL has a malformed host part")
    if net.group("password") is not None:
        raise ValueError(
            "URLs with an embedded password are refused: "
            "pass the token in the 'credential' field instead"
        )
    user = net.group("user") or None
    if user is not None and not _USER.match(user):
        raise ValueError("the user name in the repository URL has characters git cannot take")
    port = int(net.group("port")) if net.group("port") else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not a valid port")
    return GitUrl(scheme, user, _host(net.group("host")), port, m.group("path") or "/")


def _local_name(host: str) -> bool:
    return host in _LOCAL_NAMES or host.endswith(".localhost")


def check_git_url(url: str, policy: UrlPolicy | None = None) -> str:
    """Return `url` if Tailor may fetch it, else raise ValueError saying why.

    Judges what the URL itself says: its scheme, and its host when that is an address in any
    spelling, or a name reserved for this machine. Names are resolved when git connects
    (`tailor.stages.harvest.remote`), not here: a name's addresses can change after registration,
    and an answer here would tell a team which internal names exist.
    """
    policy = policy or UrlPolicy()
    parsed = parse_git_url(url, policy.schemes)
    host = parsed.host
    try:
        if not isinstance(host, str):
            check_address(host, policy.network, parsed.host_text)
        elif _local_name(host) and not policy.network.allow_loopback:
            raise HostRefused(f"host {host} is this machine: Tailor does not fetch from it")
    except HostRefused as exc:
        raise ValueError(str(exc)) from exc
    return url.strip()
