"""phi3v_train: a native Phi-3(.5)-vision model and processor, and the fine-tuning toolkit around it."""

__version__ = "0.1.0"
