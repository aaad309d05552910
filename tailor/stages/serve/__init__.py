"""Serving: one base model, many team adapters, OpenAI- and TGI-compatible protocols."""
