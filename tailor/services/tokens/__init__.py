"""API tokens: bearer credentials, stored as hashes only."""
