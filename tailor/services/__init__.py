"""Services: one per API resource; they authorise, persist and call the stage cores."""
