"""The admin console: server-rendered pages under /console over the same services as the API."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from api.console import admin, costs, people, publishing, signin, sso, team, training, usage
from api.console.web import HERE, PREFIX

router = APIRouter(include_in_schema=False)

# The only files served: a fixed list, so no path from the URL reaches the filesystem.
STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
}


@router.get(PREFIX + "/static/{name}")
def static(name: str) -> FileResponse:
    """The console's stylesheet and script."""
    if name not in STATIC:
        raise HTTPException(404, "not found")
    return FileResponse(
        HERE / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


for module in (signin, sso, team, training, publishing, usage, costs, people, admin):
    router.include_router(module.router)
router.include_router(costs.platform)

__all__ = ["router"]
