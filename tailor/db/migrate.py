"""Run Alembic migrations from code (CLI, tests, `tailor up`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import tailor


def migrations_dir() -> Path:
    """Where the migration scripts live: the source tree, or inside the installed package."""
    packaged = Path(tailor.__file__).parent / "_migrations"
    return packaged if packaged.is_dir() else Path(tailor.__file__).parents[1] / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointed at `url`, independent of the working directory."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Take the schema at `url` down to `revision`."""
    command.downgrade(alembic_config(url), revision)
