"""Adapter operations: store versions, validate imports, compose, merge-export and transfer.

Each module is a stage core over local directories and object-store keys; the registry
tables, API routes and CLI live elsewhere and call these functions.
"""
