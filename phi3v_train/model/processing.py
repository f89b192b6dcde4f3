"""``Phi3VProcessor``: the hub processor's tokenization, batched, plus the conversation encoder.

Text is split on ``<|image_N|>`` tags; every chunk is tokenized on its own *with* BOS (so a ``<s>``
follows every image) and tag ``k`` becomes ``-k`` repeated for image ``k``'s token count. The
same rules, through :mod:`phi3v_data.prompt`, build training sequences in
:meth:`Phi3VProcessor.encode_conversation`, so training and generation tokenize alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import BatchFeature, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from phi3v_data.io import atomic_write_text
from phi3v_data.prompt import (
    AnswerSegment,
    ImageSegment,
    Segment,
    TextSegment,
    TurnLike,
    conversation_segments,
    image_tag_problem,
    prompt_segments,
    split_on_tags,
    tag,
)
from phi3v_train.errors import ImageTokenMismatchError
from phi3v_train.model.image_processing import Phi3VImageProcessor

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}"
    "{{- '<|assistant|>\n' -}}{% endif %}"
)
PROCESSOR_FILE = "processor_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_KEYS_NOT_SAVED = ("auto_map", "is_local", "local_files_only")
IGNORE_INDEX = -100


@dataclass
class EncodedConversation:
    """One conversation as model input: ``-k`` image runs in ``input_ids``, -100 outside the answers."""

    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor | None = None
    image_sizes: torch.Tensor | None = None
    num_image_tokens: list[int] = field(default_factory=list)


class Phi3VProcessor:
    """Drop-in for the hub's ``Phi3VProcessor`` that also pads batches of prompts.

    ``processor(text, images)`` returns ``input_ids``, ``attention_mask`` and, with images,
    ``pixel_values`` ``[n, num_crops+1, 3, 336, 336]`` and ``image_sizes`` ``[n, 2]``.
    """

    special_image_token = "<|image|>"

    def __init__(
        self,
        image_processor: Phi3VImageProcessor,
        tokenizer: PreTrainedTokenizerBase,
        chat_template: str | None = None,
    ) -> None:
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.num_img_tokens = image_processor.num_img_tokens
        template = chat_template or tokenizer.chat_template or CHAT_TEMPLATE
        if tokenizer.chat_template is None:
            tokenizer.chat_template = template
        self.chat_template = template

    @property
    def num_crops(self) -> int:
        return self.image_processor.num_crops

    @property
    def special_image_token_id(self) -> int:
        """``<|image|>`` (32044), used by vLLM; this processor marks images with negative ids instead."""
        return self.tokenizer.convert_tokens_to_ids(self.special_image_token)

    def calc_num_image_tokens(self, images: Image.Image | Sequence[Image.Image]) -> list[int]:
        return self.image_processor.calc_num_image_tokens(images)

    def calc_num_image_tokens_from_image_size(self, width: int, height: int) -> int:
        return self.image_processor.calc_num_image_tokens_from_image_size(width, height)

    @classmethod
    def from_pretrained(
        cls, pretrained: str | os.PathLike, num_crops: int | None = None, **tokenizer_kwargs: Any
    ) -> Phi3VProcessor:
        """Loads the tokenizer and ``preprocessor_config.json`` of a hub repo or a saved folder.

        ``num_crops`` overrides the saved value (4 in Phi-3.5-vision, 16 in Phi-3-vision-128k).
        """
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(pretrained), **tokenizer_kwargs)
        image_processor = Phi3VImageProcessor.from_pretrained(pretrained, num_crops=num_crops)
        return cls(image_processor, tokenizer)

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Writes tokenizer, ``preprocessor_config.json`` (with ``num_crops``) and the chat template.

        The template goes into ``tokenizer_config.json`` (read by every transformers version) and into
        ``chat_template.jinja`` (the processor-level file of current versions). The hub's ``auto_map``
        (remote code that this folder does not hold) and the loading flags transformers copies into
        ``tokenizer_config.json`` are left out, so a load-save cycle writes the same bytes.
        """
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.chat_template = self.chat_template
        self.tokenizer.save_pretrained(str(directory), save_jinja_files=False)
        _clean_tokenizer_config(directory / TOKENIZER_CONFIG_FILE)
        self.image_processor.save_pretrained(directory)
        atomic_write_text(directory / CHAT_TEMPLATE_FILE, self.chat_template)
        processor_config = {"processor_class": type(self).__name__}
        atomic_write_text(directory / PROCESSOR_FILE, json.dumps(processor_config, indent=2, sort_keys=True) + "\n")
        return directory

    def __call__(
        self,
        text: str | Sequence[str],
        images: Image.Image | Sequence[Image.Image] | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Tokenizes one prompt or a batch of prompts with their images.

        With several prompts, ``images`` holds the images of all prompts in order, and each prompt's
        tags count from ``<|image_1|>`` over its own images. Rows are padded with the tokenizer's pad
        id on ``padding_side`` (the tokenizer's setting by default; use "left" for generation).
        ``return_tensors=None`` gives ``input_ids`` and ``attention_mask`` as lists; pixel values are
        always tensors.
        """
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        prompts = [text] if isinstance(text, str) else list(text)
        if not prompts:
            raise ValueError("text must be a prompt or a non-empty list of prompts")
        image_list = [] if images is None else [images] if isinstance(images, Image.Image) else list(images)
        prompt_segments_ = [split_on_tags(prompt) for prompt in prompts]
        counts = [_checked_image_count(segments, i, len(prompts)) for i, segments in enumerate(prompt_segments_)]
        if sum(counts) != len(image_list):
            where = "the prompt has" if len(prompts) == 1 else f"the {len(prompts)} prompts have"
            raise ImageTokenMismatchError(
                f"{where} {sum(counts)} image tag(s) but {len(image_list)} image(s) were given; "
                "give one image per <|image_N|> tag"
            )
        image_features = self.image_processor(image_list) if image_list else None
        token_counts = image_features["num_img_tokens"] if image_features is not None else []
        rows = []
        offset = 0
        for segments, count in zip(prompt_segments_, counts, strict=True):
            encoded = self._encode_segments(segments, token_counts[offset : offset + count])
            rows.append(encoded.input_ids)
            offset += count
        data = self._pad(rows, padding_side or self.tokenizer.padding_side, return_tensors)
        if image_features is not None:
            data["pixel_values"] = image_features["pixel_values"]
            data["image_sizes"] = image_features["image_sizes"]
        return BatchFeature(data)

    def encode_conversation(
        self, turns: Sequence[TurnLike], images: Sequence[Image.Image], *, for_generation: bool = False
    ) -> EncodedConversation:
        """Training (or, with ``for_generation``, prompt) tokens of a conversation.

        ``images`` are the conversation's PIL images in global order (turn by turn). Answers carry
        their own token ids as labels; everything else is -100. With ``for_generation`` the last
        turn's answer is left out, giving exactly what ``processor(apply_chat_template(...))`` gives.
        """
        if not turns:
            raise ValueError("a conversation needs at least one turn")
        first = 1
        for index, turn in enumerate(turns):
            problem = image_tag_problem(turn.user, first, len(turn.images))
            if problem is not None:
                raise ImageTokenMismatchError(f"turn {index + 1}: {problem}")
            first += len(turn.images)
        if first - 1 != len(images):
            raise ImageTokenMismatchError(
                f"the conversation lists {first - 1} image(s) but {len(images)} image(s) were given"
            )
        segments = prompt_segments(turns) if for_generation else conversation_segments(turns)
        if not images:
            return self._encode_segments(segments, [])
        features = self.image_processor(list(images))
        encoded = self._encode_segments(segments, features["num_img_tokens"])
        encoded.pixel_values = features["pixel_values"]
        encoded.image_sizes = features["image_sizes"]
        return encoded

    def _encode_segments(self, segments: Sequence[Segment], token_counts: Sequence[int]) -> EncodedConversation:
        texts = [s.text for s in segments if isinstance(s, TextSegment)]
        answers = [s.text for s in segments if isinstance(s, AnswerSegment)]
        text_ids = iter(self.tokenizer(texts, add_special_tokens=True)["input_ids"] if texts else [])
        answer_ids = iter(self.tokenizer(answers, add_special_tokens=False)["input_ids"] if answers else [])
        input_ids: list[int] = []
        labels: list[int] = []
        for segment in segments:
            if isinstance(segment, TextSegment):
                ids = next(text_ids)
                labels.extend([IGNORE_INDEX] * len(ids))
            elif isinstance(segment, ImageSegment):
                ids = [-segment.image_number] * token_counts[segment.image_number - 1]
                labels.extend([IGNORE_INDEX] * len(ids))
            else:
                ids = next(answer_ids)
                labels.extend(ids)
            input_ids.extend(ids)
        return EncodedConversation(input_ids, labels, num_image_tokens=list(token_counts))

    def _pad(self, rows: list[list[int]], padding_side: str, return_tensors: str | None) -> dict[str, Any]:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        pad_id = self.tokenizer.pad_token_id
        length = max(len(row) for row in rows)
        input_ids, attention_mask = [], []
        for row in rows:
            fill = length - len(row)
            if padding_side == "right":
                input_ids.append(row + [pad_id] * fill)
                attention_mask.append([1] * len(row) + [0] * fill)
            else:
                input_ids.append([pad_id] * fill + row)
                attention_mask.append([0] * fill + [1] * len(row))
        if return_tensors == "pt":
            return {"input_ids": torch.tensor(input_ids), "attention_mask": torch.tensor(attention_mask)}
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any:
        kwargs.setdefault("chat_template", self.chat_template)
        return self.tokenizer.apply_chat_template(conversation, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "image_sizes"]


def _checked_image_count(segments: Sequence[Segment], index: int, prompt_count: int) -> int:
    """The number of images a prompt's tags ask for; raises unless the tags run 1..n in order."""
    found = [s.image_number for s in segments if isinstance(s, ImageSegment)]
    expected = list(range(1, len(found) + 1))
    if found != expected:
        where = "the prompt" if prompt_count == 1 else f"prompt {index + 1}"
        raise ImageTokenMismatchError(
            f"{where} has tags {', '.join(tag(n) for n in found)}; expected {', '.join(tag(n) for n in expected)} "
            "(each tag once, numbered from 1 in order over this prompt's images)"
        )
    return len(found)


def _clean_tokenizer_config(config_path: Path) -> None:
    """Drops the hub's ``auto_map`` and the loading flags that transformers copies into the file."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    kept = {key: value for key, value in config.items() if key not in TOKENIZER_KEYS_NOT_SAVED}
    if kept != config:
        atomic_write_text(config_path, json.dumps(kept, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
