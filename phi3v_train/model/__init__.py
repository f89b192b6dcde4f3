"""The native Phi-3(.5)-vision model, laid out as a transformers model folder.

Importing this package registers ``phi3_v`` with ``AutoConfig`` and ``AutoModelForCausalLM``, so
``AutoModelForCausalLM.from_pretrained("microsoft/Phi-3.5-vision-instruct")`` loads the native model
without ``trust_remote_code``.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from phi3v_train.model.configuration import Phi3VConfig
from phi3v_train.model.image_processing import Phi3VImageProcessor
from phi3v_train.model.modeling import Phi3VForCausalLM
from phi3v_train.model.processing import Phi3VProcessor

AutoConfig.register(Phi3VConfig.model_type, Phi3VConfig, exist_ok=True)
AutoModelForCausalLM.register(Phi3VConfig, Phi3VForCausalLM, exist_ok=True)

__all__ = ["Phi3VConfig", "Phi3VForCausalLM", "Phi3VImageProcessor", "Phi3VProcessor"]
