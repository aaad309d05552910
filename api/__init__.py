"""Tailor's REST API service (FastAPI)."""
