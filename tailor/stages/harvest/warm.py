"""Imported by the worker pool's forkserver: build the detectors once, before workers fork.

Each worker then starts with detect-secrets' plugins and the hyperscan databases in place
(copied on fork) instead of spending a quarter of a CPU-second building its own.
"""

import logging

from tailor.redaction.redact import warm_up

try:
    warm_up()
except Exception:  # an optimisation only: an exception here would kill the forkserver
    logging.getLogger("tailor.harvest").exception("could not build the detectors ahead")
