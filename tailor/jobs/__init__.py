"""Jobs: the observable state of pipeline work (harvest, fine-tune, evaluation)."""
