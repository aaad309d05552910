"""Cluster networking for the harness kubelet's Python pods (loaded by `site` at start-up).

A pod on a cluster reaches a Service by its DNS name and port: cluster DNS gives the name a
virtual IP and the Service proxy forwards connections to it to a ready pod. Here every pod
is a local process and `$HARNESS_CLUSTER_DNS` names the kubelet's table of Service
addresses (`host:port` -> `127.0.0.1:<pod's port>`), read at each lookup so Services made
later (an endpoint's) resolve too. A name in it resolves to a loopback address of its own,
and a connection to that address and port goes to the pod's port. Other names resolve as
usual. uvloop resolves and connects in libuv, past this table, so these pods run asyncio's
own loop (uvicorn falls back to it).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from typing import Any

_TABLE = os.environ.get("HARNESS_CLUSTER_DNS", "")
_resolve = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _table() -> dict[str, str]:
    try:
        with open(_TABLE) as fh:
            return dict(json.load(fh))
    except (OSError, ValueError):
        return {}


def _virtual_ip(host: str) -> str:
    """The Service name's own loopback address (all of 127/8 is loopback on Linux)."""
    digest = hashlib.sha256(host.encode()).digest()
    return f"127.{100 + digest[0] % 100}.{digest[1]}.{1 + digest[2] % 250}"


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and any(k.rsplit(":", 1)[0] == name for k in _table()):
        return _resolve(_virtual_ip(name), port, *args, **kwargs)
    return _resolve(host, port, *args, **kwargs)


def _target(address: Any) -> Any:
    """A Service's virtual address and port -> its pod's; anything else unchanged."""
    if not (isinstance(address, tuple) and len(address) == 2):
        return address
    for key, target in _table().items():
        host, port = key.rsplit(":", 1)
        if (_virtual_ip(host), str(address[1])) == (address[0], port):
            local, local_port = target.rsplit(":", 1)
            return (local, int(local_port))
    return address


def _connect_to(self: socket.socket, address: Any) -> None:
    _connect(self, _target(address))


def _connect_ex_to(self: socket.socket, address: Any) -> int:
    return _connect_ex(self, _target(address))


if _TABLE:
    socket.getaddrinfo = _getaddrinfo
    socket.socket.connect = _connect_to  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex_to  # type: ignore[method-assign]
    sys.modules["uvloop"] = None  # type: ignore[assignment]  (import uvloop: ImportError)
