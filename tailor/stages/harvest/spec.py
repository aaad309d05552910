"""HarvestSpec: what a team asks a harvest to do, plus the shapes of its sources and outcomes.

Only pydantic and the standard library here: the API imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Extension (lower case, with the dot) or exact file name -> language. The allowlist: files
# whose extension is not here are skipped with the reason "language".
DEFAULT_LANGUAGES: dict[str, str] = {
    ".py": "Python",
    ".pyi": "Python",
    ".ipynb": "Jupyter Notebook",
    ".js": "JavaScript",
    ".jsx": "JavaScript",
    ".mjs": "JavaScript",
    ".cjs": "JavaScript",
    ".ts": "TypeScript",
    ".tsx": "TypeScript",
    ".java": "Java",
    ".go": "Go",
    ".rs": "Rust",
    ".c": "C",
    ".h": "C",
    ".cc": "C++",
    ".cpp": "C++",
    ".cxx": "C++",
    ".hh": "C++",
    ".hpp": "C++",
    ".hxx": "C++",
    ".cs": "C#",
    ".kt": "Kotlin",
    ".kts": "Kotlin",
    ".scala": "Scala",
    ".rb": "Ruby",
    ".php": "PHP",
    ".sh": "Shell",
    ".bash": "Shell",
    ".zsh": "Shell",
    ".sql": "SQL",
    ".yaml": "YAML",
    ".yml": "YAML",
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".swift": "Swift",
    ".lua": "Lua",
    ".r": "R",
    ".jl": "Julia",
    ".dart": "Dart",
    ".toml": "TOML",
    "Dockerfile": "Dockerfile",
    "Makefile": "Makefile",
}

# Directories never walked: version control, dependencies vendored in, build outputs, caches.
DEFAULT_SKIP_DIRS: list[str] = [
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "bower_components",
    "vendor",
    "third_party",
    "build",
    "dist",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gradle",
    ".idea",
    ".next",
    ".eggs",
]

# Dependency lock files: machine-written, large, and no one's coding style.
DEFAULT_LOCK_FILES: list[str] = [
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "Cargo.lock",
    "poetry.lock",
    "Pipfile.lock",
    "composer.lock",
    "Gemfile.lock",
    "go.sum",
    "uv.lock",
    "pdm.lock",
    "packages.lock.json",
    "flake.lock",
]


class FilterConfig(BaseModel):
    """Which files a harvest keeps (walk rules and quality filters)."""

    model_config = ConfigDict(extra="forbid")

    max_file_bytes: int = Field(1 << 20, ge=1, description="Larger files are skipped unread.")
    max_mean_line_length: float = Field(100, gt=0, description="Codex/StarCoder: mean > 100 drops.")
    max_line_length: int = Field(1000, gt=0, description="Any longer line drops the file.")
    min_alnum_fraction: float = Field(
        0.25, ge=0, le=1, description="Files with fewer alphanumeric characters drop."
    )
    max_secret_fraction: float = Field(
        0.5, gt=0, le=1, description="Files whose redacted share is larger are mostly secrets."
    )
    languages: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_LANGUAGES),
        description="Extension (`.py`) or file name (`Dockerfile`) -> language; the allowlist.",
    )
    skip_dirs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SKIP_DIRS),
        description="Directory names never walked (vendored code, build outputs, caches).",
    )
    lock_files: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LOCK_FILES),
        description="File names of dependency lock files, always skipped.",
    )

    @model_validator(mode="after")
    def _languages_not_empty(self) -> FilterConfig:
        if not self.languages:
            raise ValueError("languages is empty: no file could be kept")
        bad = [k for k in self.languages if k.startswith(".") and k != k.lower()]
        if bad:
            raise ValueError(f"extensions must be lower case: {', '.join(sorted(bad))}")
        return self


class DedupConfig(BaseModel):
    """Near-duplicate detection: MinHash with LSH over token shingles (BigCode's settings)."""

    model_config = ConfigDict(extra="forbid")

    num_perm: int = Field(256, ge=16, le=1024, description="MinHash permutations.")
    ngram: int = Field(5, ge=1, le=32, description="Tokens per shingle.")
    threshold: float = Field(0.7, gt=0, lt=1, description="Jaccard similarity for duplicates.")
    seed: int = Field(42, ge=0, description="Seed of the permutations; indexes share it.")


class HarvestSpec(BaseModel):
    """A harvest request: which repositories, and how files are filtered and deduplicated."""

    model_config = ConfigDict(extra="forbid")

    repositories: list[str] | None = Field(
        None, description="Names of the team's repositories; null means all of them."
    )
    filters: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    holdout_fraction: float = Field(
        0.05, ge=0, lt=1, description="Share of files (by path hash) held out for evaluation."
    )

    @model_validator(mode="after")
    def _repositories_not_empty(self) -> HarvestSpec:
        if self.repositories is not None and not self.repositories:
            raise ValueError("repositories is an empty list: name at least one, or send null")
        return self


CredentialKind = Literal["token", "ssh_key"]


@dataclass(frozen=True)
class RepoSource:
    """One repository to harvest, with its credential already decrypted by the caller."""

    name: str
    url: str
    branch: str = "main"
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    # An HTTPS token (or `user:token`) or an SSH private key; repr=False keeps it out of logs.
    credential: str | None = field(default=None, repr=False)
    credential_kind: CredentialKind | None = None
    last_commit: str | None = None


class RepoOutcome(BaseModel):
    """How one repository fared: ok with its commit, or failed with a reason a person can act on."""

    name: str
    status: Literal["ok", "failed"]
    reason: str | None = None
    commit: str | None = None
    incremental: bool = False
    since: str | None = Field(
        None, description="The earlier commit an incremental harvest read the changes from."
    )
    changed_files: int | None = Field(
        None, description="Files added or modified since that commit (incremental harvests)."
    )
    deleted_files: int | None = Field(
        None, description="Harvestable files deleted since that commit (listed in the manifest)."
    )
    files_kept: int = 0
