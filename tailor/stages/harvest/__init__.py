"""Harvest: a team's repositories into a clean, deduplicated, secret-free training set."""
