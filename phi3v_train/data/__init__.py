"""Training data: JSONL records -> encoded conversations (images decoded in DataLoader workers) -> padded batches."""
