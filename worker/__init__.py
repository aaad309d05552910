"""Tailor's Celery worker: thin tasks that call the pipelines in `tailor/`."""
