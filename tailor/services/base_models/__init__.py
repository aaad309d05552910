"""The platform's catalog of base models: requests name a base, the platform knows its files."""
