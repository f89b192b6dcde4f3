"""phi3v_train: a native Phi-3(.5)-vision model and processor, and the fine-tuning toolkit around it.

Importing the package registers ``phi3_v`` with ``AutoConfig`` and ``AutoModelForCausalLM``, so
``AutoModelForCausalLM.from_pretrained("microsoft/Phi-3.5-vision-instruct")`` loads the native model
without ``trust_remote_code``.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from phi3v_train.configuration import Phi3VConfig
from phi3v_train.modeling import Phi3VForCausalLM

__version__ = "0.1.0"

AutoConfig.register(Phi3VConfig.model_type, Phi3VConfig, exist_ok=True)
AutoModelForCausalLM.register(Phi3VConfig, Phi3VForCausalLM, exist_ok=True)

__all__ = ["Phi3VConfig", "Phi3VForCausalLM", "__version__"]
