"""What is recorded of one served completion and of one editor event (never code text)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

from tailor.db.base import utcnow

# Tabby's and OpenAI's names for what an editor did with a completion it was given.
EVENT_KINDS = ("view", "select", "dismiss")

# File extensions to the language ids editors use (VS Code's), for clients that send a path
# but no language; an extension not here is recorded as itself.
_EXTENSIONS = {
    "py": "python",
    "js": "javascript",
    "mjs": "javascript",
    "jsx": "javascriptreact",
    "ts": "typescript",
    "tsx": "typescriptreact",
    "go": "go",
    "rs": "rust",
    "java": "java",
    "kt": "kotlin",
    "rb": "ruby",
    "php": "php",
    "c": "c",
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "hpp": "cpp",
    "cs": "csharp",
    "swift": "swift",
    "scala": "scala",
    "sh": "shellscript",
    "sql": "sql",
    "lua": "lua",
    "md": "markdown",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "json": "json",
    "html": "html",
    "css": "css",
}
_MAX_LANGUAGE = 64
# Where the completion goes in a kept fill-in-the-middle prompt (prefix, this, suffix).
FIM_HOLE = "<|completion|>"


def language_of(language: str | None, path: str | None) -> str | None:
    """The completion's language: the client's own name, else the path's extension, else None."""
    if language and language.strip():
        return language.strip().lower()[:_MAX_LANGUAGE]
    if not path:
        return None
    suffix = PurePosixPath(path.replace("\\", "/")).suffix.lower().lstrip(".")
    if not suffix:
        return None
    return _EXTENSIONS.get(suffix, suffix)[:_MAX_LANGUAGE]


@dataclass(frozen=True)
class Served:
    """One completion the gateway answered (status 200)."""

    id: str
    team_id: int
    user_id: int | None
    version_id: int | None
    model: str
    route: str
    language: str | None
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    created_at: datetime = field(default_factory=utcnow)
    # Raw; redacted by the recorder's writer, off the request path. None: not kept.
    prompt_text: str | None = None
    completion_text: str | None = None


@dataclass(frozen=True)
class Feedback:
    """An editor's view, select or dismiss of one of a served completion's choices."""

    completion_id: str
    kind: str
    choice_index: int = 0
    created_at: datetime = field(default_factory=utcnow)
