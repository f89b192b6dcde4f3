"""ShareGPT-style files of ms-swift and LLaMA-Factory: a JSON array (or JSON lines) of::

    {"messages": [{"role": "system", "content": "You are a sports commentator."},
                  {"role": "user", "content": "<image>Who are they?"},
                  {"role": "assistant", "content": "They're Kane and Gretzka from Bayern Munich."}],
     "images": ["mllm_demo_data/1.jpg"]}

A leading ``system`` message goes into ``metadata.system`` (Phi-3.5-vision's chat template has no system turn);
a system message anywhere else skips the item. The ``<image>`` placeholders must match ``images`` one to one.
Records in LLaMA-Factory's default ``conversations`` / ``from`` / ``value`` tags are read as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from phi3v_data.converters.base import ItemSkipped
from phi3v_data.converters.chat import ChatFileConverter
from phi3v_data.converters.llava import ROLES, image_list

SYSTEM = "system"


@dataclass
class ShareGPTConverter(ChatFileConverter):
    name: ClassVar[str] = "sharegpt"
    default_source: ClassVar[str] = "sharegpt"

    def parse(self, item: dict[str, Any]) -> tuple[list[tuple[str, str]], list[Any], dict[str, Any]]:
        conversation = item.get("messages", item.get("conversations"))
        if not isinstance(conversation, list):
            raise ItemSkipped("no 'messages' list")
        extra: dict[str, Any] = {}
        if isinstance(item.get("system"), str) and item["system"]:
            extra["system"] = item["system"]
        messages = []
        for i, message in enumerate(conversation):
            if not isinstance(message, dict):
                raise ItemSkipped(f"message {i + 1} is not an object")
            role, content = message.get("role", message.get("from")), message.get("content", message.get("value"))
            if not isinstance(content, str):
                raise ItemSkipped(f"message {i + 1} has no text 'content'")
            if role == SYSTEM:
                if i != 0 or "system" in extra:
                    raise ItemSkipped(f"message {i + 1} is a system message; only the first message may be one")
                extra["system"] = content
                continue
            if role not in ROLES:
                raise ItemSkipped(f"message {i + 1} has role {role!r}; expected system, user or assistant")
            messages.append((ROLES[role], content))
        return messages, image_list(item.get("images"), "images"), extra
