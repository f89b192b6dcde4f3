"""The native Phi-3(.5)-vision model, laid out as a transformers model folder.

Importing this package registers ``phi3_v`` with ``AutoConfig``, ``AutoModelForCausalLM``,
``AutoProcessor`` and ``AutoImageProcessor``, so ``AutoModelForCausalLM.from_pretrained(
"microsoft/Phi-3.5-vision-instruct")`` and ``AutoProcessor.from_pretrained(...)`` load the native
classes without ``trust_remote_code`` (the hub files' ``auto_map`` is then not used).
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModelForCausalLM, AutoProcessor

from phi3v_train.model.configuration import Phi3VConfig
from phi3v_train.model.image_processing import Phi3VImageProcessor
from phi3v_train.model.modeling import Phi3VForCausalLM
from phi3v_train.model.processing import Phi3VProcessor

AutoConfig.register(Phi3VConfig.model_type, Phi3VConfig, exist_ok=True)
AutoModelForCausalLM.register(Phi3VConfig, Phi3VForCausalLM, exist_ok=True)
AutoImageProcessor.register(Phi3VConfig, slow_image_processor_class=Phi3VImageProcessor, exist_ok=True)
AutoProcessor.register(Phi3VConfig, Phi3VProcessor, exist_ok=True)

__all__ = ["Phi3VConfig", "Phi3VForCausalLM", "Phi3VImageProcessor", "Phi3VProcessor"]
