"""phi3v_data: the `conversations` JSONL record format, its validator and dataset converters.

Submodules are imported on demand, so that light modules such as :mod:`phi3v_data.image_tokens`
and :mod:`phi3v_data.prompt` can be used without pydantic installed (the model code relies on this).
"""

__version__ = "0.1.0"
