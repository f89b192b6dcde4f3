"""The trainer: configuration, presets, freezing and LoRA modes, and the Hugging Face Trainer around them."""
