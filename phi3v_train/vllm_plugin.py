"""vLLM general plugin: lets ``vllm serve`` read phi3v exports and the hub's Phi-3(.5)-vision folders natively.

vLLM calls :func:`register` in every process it starts (entry point group ``vllm.general_plugins``,
declared in pyproject.toml) before it reads a model. Registering ``phi3_v`` with ``AutoConfig``,
``AutoProcessor`` and ``AutoImageProcessor`` makes ``vllm serve <folder>`` resolve the config,
tokenizer and processor without ``--trust-remote-code``; the model itself is vLLM's own
``Phi3VForCausalLM``, which reads the hub's weight names, so nothing is registered with vLLM.
"""

from __future__ import annotations


def register() -> None:
    """Registers the native config, processor and image processor with the transformers Auto classes.

    Idempotent and cheap after the first call: importing :mod:`phi3v_train.model` does the
    registration (with ``exist_ok``), and Python imports a module once per process.
    """
    import phi3v_train.model  # noqa: F401
