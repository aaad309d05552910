"""Secret redaction: the patterns, value checks and scanner the harvest and telemetry use."""
