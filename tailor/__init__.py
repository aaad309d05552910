"""Tailor: turn a team's private code into a per-team code assistant."""

__version__ = "0.1.0"
