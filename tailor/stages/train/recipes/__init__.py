"""Training recipes: one readable file per method (setup → train → save → clean up)."""
