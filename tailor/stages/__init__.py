"""Stage cores: the work of each pipeline stage, free of HTTP, Celery and the DB."""
