"""The `tailor` command line."""
