"""`tailor login --sso`: the device authorization grant, through the Tailor API."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from tailor.cli.client import ApiError, Client


def device_sign_in(client: Client, say: Callable[[str], Any]) -> dict[str, Any]:
    """Show where to confirm the code, wait for the person to do it; the CLI session."""
    grant = client.post("/v1/auth/device")
    where = grant.get("verification_uri_complete") or grant["verification_uri"]
    say(f"Open {where} and confirm the code {grant['user_code']}")
    sys.stdout.flush()  # shown now, also when the output goes to a pipe or a log
    deadline = time.monotonic() + int(grant["expires_in"])
    interval = int(grant["interval"])
    while time.monotonic() < deadline:
        time.sleep(interval)
        answer = client.post("/v1/auth/device/token", {"device_code": grant["device_code"]})
        if answer.get("status") == "complete":
            return dict(answer)
        interval = int(answer.get("interval", interval))
    raise ApiError(
        401, {"title": "sign-in expired", "detail": "the code was not confirmed in time"}
    )
