"""Adapter operations (compose, transfer, import, export): queued from the API, run by the worker,
each new version sent to its evaluation."""
