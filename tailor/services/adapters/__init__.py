"""The adapter registry: named adapters, immutable versions, and endpoints that serve them."""
