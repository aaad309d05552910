"""Evaluations: jobs that score an adapter version against its base model."""
