"""LLaVA instruction files (``llava_v1_5_mix665k.json``): a JSON array (or JSON lines) of::

    {"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat are the colors of the bus in the image?"},
                       {"from": "gpt", "value": "The bus in the image is white and red."}]}

becomes::

    {"id": "000000033471", "source": "llava", "conversations": [{"images": ["train/5d1c….jpg"],
     "user": "<|image_1|>\\nWhat are the colors of the bus in the image?",
     "assistant": "The bus in the image is white and red."}], "metadata": {"file": "mix.json", "item": "item 0"}}

``image`` is one path or a list, relative to ``--image-folder``; items without it are text-only records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from phi3v_data.converters.base import ItemSkipped
from phi3v_data.converters.chat import ASSISTANT, USER, ChatFileConverter

ROLES = {"human": USER, "user": USER, "gpt": ASSISTANT, "assistant": ASSISTANT}


def image_list(value: Any, key: str) -> list[Any]:
    """A LLaVA ``image`` (or ShareGPT ``images``) value as a list: absent means none, a string means one."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str | dict) for v in value):
        return value
    raise ItemSkipped(f"{key!r} must be a path or a list of paths, not {type(value).__name__}")


@dataclass
class LlavaConverter(ChatFileConverter):
    name: ClassVar[str] = "llava"
    default_source: ClassVar[str] = "llava"

    def parse(self, item: dict[str, Any]) -> tuple[list[tuple[str, str]], list[Any], dict[str, Any]]:
        conversation = item.get("conversations")
        if not isinstance(conversation, list):
            raise ItemSkipped("no 'conversations' list")
        messages = []
        for i, message in enumerate(conversation):
            if not isinstance(message, dict) or not isinstance(message.get("value"), str):
                raise ItemSkipped(f"message {i + 1} is not {{'from': ..., 'value': str}}")
            role = ROLES.get(message.get("from"))
            if role is None:
                raise ItemSkipped(f"message {i + 1} is from {message.get('from')!r}; expected 'human' or 'gpt'")
            messages.append((role, message["value"]))
        return messages, image_list(item.get("image"), "image"), {}
