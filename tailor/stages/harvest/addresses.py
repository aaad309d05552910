"""Which network addresses git may connect to, however the address is spelled.

A host is normalised before it is judged: IDNA and full-width forms, trailing dots, and every
spelling of an IPv4 number that URL parsers and `inet_aton` accept (`2852039166`,
`0xa9fea9fe`, `0251.0376.0251.0376`, `169.254.43518`). An IPv6 address that carries an IPv4
one (mapped, compatible, SIIT, NAT64, 6to4) is judged by that IPv4 address too. Names are
judged by every address they resolve to, through a resolver passed in.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import idna

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Instance metadata services: never a git server, whatever the platform allows.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$")
_HEX = re.compile(r"^0x[0-9a-f]*$")
_OCT = re.compile(r"^0[0-7]*$")
_NUMERIC = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")  # looks like a number, valid or not


class HostRefused(ValueError):
    """Git may not connect to this host; the message says why."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (A and AAAA), as the system resolver answers."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class NetworkPolicy:
    """Which non-public addresses are allowed, and how names are resolved."""

    allow_loopback: bool = False
    allowed_networks: tuple[Network, ...] = ()
    resolve: Resolver = system_resolver

    @classmethod
    def of(cls, allow_loopback: bool, networks: Iterable[str]) -> NetworkPolicy:
        """A policy from settings: CIDR strings of the private networks git servers live in."""
        nets = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        return cls(allow_loopback=allow_loopback, allowed_networks=nets)


def _ipv4_part(part: str) -> int | None:
    """One dot-separated part of an IPv4 number (hex, octal or decimal), or None."""
    if _HEX.match(part):
        return int(part[2:] or "0", 16)
    if _OCT.match(part):
        return int(part, 8)
    return int(part) if part.isascii() and part.isdigit() and part[0] != "0" else None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`host` as an IPv4 address in any inet_aton/WHATWG spelling; None when it is a name.

    A host whose last label is a number is an address or invalid (HostRefused), never a
    name: that is how browsers, curl and `inet_aton` read it.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not _NUMERIC.match(parts[-1]):
        return None
    numbers = [_ipv4_part(p) for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise HostRefused(f"host {host} is neither a valid name nor a valid address")
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise HostRefused(f"host {host} is not a valid IPv4 address")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def normalise_host(host: str) -> str | Address:
    """The address a host spells, or its lower-case ASCII name; HostRefused if neither."""
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if "%" in inner:
            raise HostRefused(f"host {host} names a network interface (zone id): not allowed")
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError as exc:
            raise HostRefused(f"host {host} is not a valid IPv6 address") from exc
    name = host
    if not name.isascii():
        try:  # UTS 46 maps full-width digits and dots, and lower-cases
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise HostRefused(f"host {host} is not a valid host name") from exc
    name = name.lower()
    address = parse_ipv4(name)
    if address is not None:
        return address
    name = name.removesuffix(".")
    if not _NAME.match(name):
        raise HostRefused(f"host {host} is not a valid host name")
    return name


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, bool]:
    """The IPv4 address inside `addr`, and whether it alone decides where packets go."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped, True
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _SIIT or any(addr in n for n in _NAT64):
        return low32, True
    if addr in _COMPATIBLE and int(addr) > 1:
        return low32, True
    if addr.sixtofour is not None:
        return addr.sixtofour, False
    return None, False


def _class_refusal(addr: Address, policy: NetworkPolicy) -> str | None:
    if addr in METADATA:
        return "a cloud metadata service address"
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if any(addr.version == n.version and addr in n for n in policy.allowed_networks):
        return None
    if not addr.is_global or addr.is_reserved:
        return "a private or reserved address"
    return None


def refusal(addr: Address, policy: NetworkPolicy) -> str | None:
    """Why git may not connect to `addr` ("a link-local address"), or None when it may."""
    if isinstance(addr, ipaddress.IPv6Address):
        v4, decisive = _embedded_ipv4(addr)
        if v4 is not None:
            inner = _class_refusal(v4, policy)
            if inner is not None:
                return f"{inner} ({v4}) inside an IPv6 address"
            if decisive:
                return None
    return _class_refusal(addr, policy)


def check_address(addr: Address, policy: NetworkPolicy, host: str) -> Address:
    """`addr` when git may connect to it; HostRefused naming the host otherwise."""
    reason = refusal(addr, policy)
    if reason is not None:
        raise HostRefused(f"host {host} is {reason}: Tailor does not fetch from it")
    return addr


def resolve_checked(name: str, port: int, policy: NetworkPolicy) -> Address:
    """The address git should connect to for `name`: every address it resolves to is checked.

    OSError when the name does not resolve; HostRefused when any of its addresses is not
    allowed (one bad record is enough: the name's owner chooses which one a client uses).
    """
    records = policy.resolve(name, port)
    if not records:
        raise OSError(f"{name} resolved to no address")
    addresses = []
    for record in records:
        addr = ipaddress.ip_address(record.split("%", 1)[0])
        addresses.append(check_address(addr, policy, f"{name} ({addr})"))
    return addresses[0]
