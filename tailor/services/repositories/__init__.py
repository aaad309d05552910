"""A team's registered git repositories and their write-only credentials."""
