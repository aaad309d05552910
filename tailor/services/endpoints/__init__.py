"""Inference endpoints: publishing adapters to a team endpoint and syncing it to the cluster."""
