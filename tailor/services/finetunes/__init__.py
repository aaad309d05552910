"""Fine-tunes: jobs that turn a dataset into a new adapter version."""
