"""Completion telemetry: what the gateway served, what editors kept, and per-team statistics."""
