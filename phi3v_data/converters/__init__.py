"""Dataset converters: each turns a raw dataset layout into `conversations` JSONL plus images."""

from phi3v_data.converters.base import Converter, ConvertSummary, ItemSkipped, Plan, Task, run_conversion
from phi3v_data.converters.custom import CustomConverter
from phi3v_data.converters.docvqa import DocVQAConverter
from phi3v_data.converters.hateful_memes import HatefulMemesConverter
from phi3v_data.converters.hf import HfConverter
from phi3v_data.converters.llava import LlavaConverter
from phi3v_data.converters.nlvr2 import Nlvr2Converter
from phi3v_data.converters.sharegpt import ShareGPTConverter
from phi3v_data.converters.ucf101 import Ucf101Converter

CONVERTERS: dict[str, type[Converter]] = {
    cls.name: cls
    for cls in (
        Ucf101Converter,
        DocVQAConverter,
        HatefulMemesConverter,
        Nlvr2Converter,
        CustomConverter,
        LlavaConverter,
        ShareGPTConverter,
        HfConverter,
    )
}

__all__ = [
    "CONVERTERS",
    "ConvertSummary",
    "Converter",
    "CustomConverter",
    "DocVQAConverter",
    "HatefulMemesConverter",
    "HfConverter",
    "ItemSkipped",
    "LlavaConverter",
    "Nlvr2Converter",
    "Plan",
    "ShareGPTConverter",
    "Task",
    "Ucf101Converter",
    "run_conversion",
]
