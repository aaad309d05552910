"""Persistence: typed SQLAlchemy models and session handling."""
