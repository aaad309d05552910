"""Training: FIM fine-tuning (LoRA, QLoRA, full FSDP) from a dataset to a stored adapter."""
