"""``Phi3VProcessor``: the hub processor as a transformers ``ProcessorMixin``, batched, plus the conversation encoder.

Text is split on ``<|image_N|>`` tags; every chunk is tokenized on its own *with* BOS (so a ``<s>``
follows every image) and tag ``k`` becomes ``-k`` repeated for image ``k``'s token count. The
same rules, through :mod:`phi3v_data.prompt`, build training sequences in
:meth:`Phi3VProcessor.encode_conversation`: a conversation's training tokens are the tokens of its
chat-template rendering (every answer but the last in the text) followed by the final answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import BatchFeature, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from transformers.processing_utils import ProcessorMixin

from phi3v_data.io import atomic_write_text
from phi3v_data.prompt import (
    IMAGE_TAG_RE,
    ImageSegment,
    Segment,
    TextSegment,
    TurnLike,
    conversation_segments,
    image_tag_problem,
    prompt_segments,
    split_on_tags,
    tag,
    texts_by_bos,
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
IGNORE_INDEX = -100
MAX_IMAGE_TAGS = 1_000_000
PADDING_CHOICES = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None}


class ImageTags(Sequence[str]):
    """``["<|image_1|>", "<|image_2|>", ...]`` as the hub processor's ``img_tokens`` (vLLM indexes and slices it)."""

    def __len__(self) -> int:
        return MAX_IMAGE_TAGS

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [tag(n + 1) for n in range(*index.indices(MAX_IMAGE_TAGS))]
        position = range(MAX_IMAGE_TAGS)[index]
        return tag(position + 1)

    def __iter__(self) -> Iterator[str]:
        return (tag(n + 1) for n in range(MAX_IMAGE_TAGS))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageTags)

    def __hash__(self) -> int:
        return hash(ImageTags)

    def __repr__(self) -> str:
        return "ImageTags(<|image_1|>, <|image_2|>, ...)"


@dataclass
class EncodedConversation:
    """One conversation as model input: ``-k`` image runs in ``input_ids``, -100 outside the answers."""

    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor | None = None
    image_sizes: torch.Tensor | None = None
    num_image_tokens: list[int] = field(default_factory=list)


class Phi3VProcessor(ProcessorMixin):
    """The hub's ``Phi3VProcessor`` as a transformers processor; also pads and truncates batches of prompts.

    ``processor(text, images)`` returns ``input_ids``, ``attention_mask`` and, with images,
    ``pixel_values`` ``[n, num_crops+1, 3, 336, 336]`` and ``image_sizes`` ``[n, 2]``. Loading and
    saving go through ``ProcessorMixin``; ``from_pretrained(..., num_crops=N)`` overrides the saved
    crop count (vLLM's ``--mm-processor-kwargs '{"num_crops": N}'`` arrives this way).
    """

    special_image_token = "<|image|>"

    def __init__(
        self,
        image_processor: Phi3VImageProcessor,
        tokenizer: PreTrainedTokenizerBase,
        chat_template: str | None = None,
        num_crops: int | None = None,
    ) -> None:
        template = chat_template or tokenizer.chat_template or CHAT_TEMPLATE
        super().__init__(image_processor, tokenizer, chat_template=template)
        if tokenizer.chat_template is None:
            tokenizer.chat_template = template
        if num_crops is not None:
            image_processor.num_crops = Phi3VImageProcessor(num_crops=num_crops).num_crops
        self.num_img_tokens = image_processor.num_img_tokens
        self.img_tokens = ImageTags()

    @property
    def num_crops(self) -> int:
        return self.image_processor.num_crops

    @property
    def special_image_token_id(self) -> int:
        """``<|image|>`` (32044), used by vLLM; this processor marks images with negative ids instead."""
        return self.tokenizer.convert_tokens_to_ids(self.special_image_token)

    def get_special_image_token_id(self) -> int:
        return self.special_image_token_id

    def calc_num_image_tokens(self, images: Image.Image | Sequence[Image.Image]) -> list[int]:
        return self.image_processor.calc_num_image_tokens(images)

    def calc_num_image_tokens_from_image_size(self, width: int, height: int) -> int:
        return self.image_processor.calc_num_image_tokens_from_image_size(width=width, height=height)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, num_crops: int | None = None, **kwargs: Any
    ) -> Phi3VProcessor:
        """Loads the tokenizer, ``preprocessor_config.json`` and chat template of a hub repo or a saved folder.

        ``num_crops`` overrides the saved value (4 in Phi-3.5-vision, 16 in Phi-3-vision-128k).
        """
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if num_crops is not None:
            processor.image_processor.num_crops = Phi3VImageProcessor(num_crops=num_crops).num_crops
        return processor

    @classmethod
    def _load_tokenizer_from_pretrained(
        cls,
        sub_processor_type: str,
        pretrained_model_name_or_path: str | os.PathLike,
        subfolder: str = "",
        **kwargs: Any,
    ) -> PreTrainedTokenizerBase:
        """``tokenizer.json`` exactly as saved.

        ``AutoTokenizer`` picks that too when a phi3_v ``config.json`` is beside it, but in a folder
        without one it follows ``tokenizer_class: LlamaTokenizer``, whose 5.x class replaces the
        normalizer (a ``▁`` before every piece) by a Metaspace that changes the ids.
        """
        return PreTrainedTokenizerFast.from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """``processor_config.json``: the class and ``num_crops``, no nested image processor.

        The image processor lives in ``preprocessor_config.json`` (as in the hub), because the hub's
        processor constructor would receive a nested ``image_processor`` dict instead of the object.
        """
        return {"num_crops": self.num_crops, "processor_class": type(self).__name__}

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Writes the tokenizer, ``preprocessor_config.json``, ``processor_config.json`` and the chat template.

        The tokenizer files are written so that transformers 4.x loads them too (see
        :func:`portable_tokenizer_config`); the template goes
        into ``tokenizer_config.json`` (read by every transformers version) and ``chat_template.jinja``.
        """
        self.tokenizer.chat_template = self.chat_template
        files = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        self.image_processor.save_pretrained(save_directory)
        write_portable_tokenizer_config(save_directory, self.tokenizer, self.chat_template)
        return [*files, os.path.join(save_directory, "preprocessor_config.json")]

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        images: Image.Image | Sequence[Image.Image] | Sequence[Sequence[Image.Image]] | None = None,
        padding: bool | str = True,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = "pt",
        *,
        padding_side: str | None = None,
        pad_to_multiple_of: int | None = None,
        add_special_tokens: bool = True,
        num_crops: int | None = None,
    ) -> BatchFeature:
        """Tokenizes one prompt or a batch of prompts with their images (the hub's call, with batching).

        With several prompts, ``images`` holds the images of all prompts in order (flat, or one list per
        prompt), and each prompt's tags count from ``<|image_1|>`` over its own images. ``padding``
        (True/"longest", "max_length", False) pads with the tokenizer's pad id on ``padding_side`` (the
        tokenizer's setting by default; use "left" for generation), up to a multiple of
        ``pad_to_multiple_of``. ``truncation`` with ``max_length`` cuts rows on the tokenizer's
        truncation side; cutting into an image's tokens is an error. ``return_tensors`` "pt", "np" or
        None (lists; pixel values stay tensors). ``add_special_tokens=False`` leaves out every BOS.
        ``num_crops`` overrides the crop count for this call.
        """
        if isinstance(text, Image.Image) or (isinstance(images, str)):
            text, images = images, text
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        if padding not in PADDING_CHOICES:
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        prompts = [text] if isinstance(text, str) else list(text or [])
        if not prompts or not all(isinstance(prompt, str) for prompt in prompts):
            raise ValueError("text must be a prompt or a non-empty list of prompts")
        image_list, per_prompt = _flat_images(images, len(prompts))
        prompt_pieces = [split_on_tags(prompt) for prompt in prompts]
        counts = [_checked_image_count(pieces, i, len(prompts)) for i, pieces in enumerate(prompt_pieces)]
        if per_prompt is not None and per_prompt != counts:
            raise ImageTokenMismatchError(
                f"the prompts have {counts} image tag(s) but {per_prompt} image(s) were given per prompt; "
                "give one image per <|image_N|> tag"
            )
        if sum(counts) != len(image_list):
            where = "the prompt has" if len(prompts) == 1 else f"the {len(prompts)} prompts have"
            raise ImageTokenMismatchError(
                f"{where} {sum(counts)} image tag(s) but {len(image_list)} image(s) were given; "
                "give one image per <|image_N|> tag"
            )
        image_features = None
        token_counts: list[int] = []
        if image_list:
            image_features = self.image_processor(
                image_list, return_tensors="np" if return_tensors == "np" else "pt", num_crops=num_crops
            )
            token_counts = image_features["num_img_tokens"]
        rows = []
        offset = 0
        for pieces, count in zip(prompt_pieces, counts, strict=True):
            if not add_special_tokens:
                pieces = [TextSegment(p.text, bos=False) if isinstance(p, TextSegment) else p for p in pieces]
            rows.append(self._encode_segments(pieces, token_counts[offset : offset + count]).input_ids)
            offset += count
        if truncation not in (None, False, "do_not_truncate") and max_length is not None:
            rows = [self._truncated(row, max_length, i) for i, row in enumerate(rows)]
        data = self._pad(
            rows,
            PADDING_CHOICES[padding],
            padding_side or self.tokenizer.padding_side,
            max_length,
            pad_to_multiple_of,
        )
        features = BatchFeature(data, tensor_type=return_tensors)
        if image_features is not None:
            features["pixel_values"] = image_features["pixel_values"]
            features["image_sizes"] = image_features["image_sizes"]
        return features

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
        with_bos, without_bos = texts_by_bos(segments)
        bos_ids = iter(self.tokenizer(with_bos, add_special_tokens=True)["input_ids"] if with_bos else [])
        plain_ids = iter(self.tokenizer(without_bos, add_special_tokens=False)["input_ids"] if without_bos else [])
        input_ids: list[int] = []
        labels: list[int] = []
        for segment in segments:
            if isinstance(segment, TextSegment):
                ids = next(bos_ids) if segment.bos else next(plain_ids)
                labels.extend([IGNORE_INDEX] * len(ids))
            elif isinstance(segment, ImageSegment):
                ids = [-segment.image_number] * token_counts[segment.image_number - 1]
                labels.extend([IGNORE_INDEX] * len(ids))
            else:
                ids = next(plain_ids)
                labels.extend(ids)
            input_ids.extend(ids)
        return EncodedConversation(input_ids, labels, num_image_tokens=list(token_counts))

    def _truncated(self, row: list[int], max_length: int, index: int) -> list[int]:
        if len(row) <= max_length:
            return row
        left = self.tokenizer.truncation_side == "left"
        kept, dropped = (row[-max_length:], row[:-max_length]) if left else (row[:max_length], row[max_length:])
        if any(token < 0 for token in dropped):
            raise ImageTokenMismatchError(
                f"prompt {index + 1} has {len(row)} tokens; truncating it to max_length={max_length} would cut "
                "image tokens. Raise max_length, lower num_crops, or drop images"
            )
        return kept

    def _pad(
        self,
        rows: list[list[int]],
        strategy: str | None,
        padding_side: str,
        max_length: int | None,
        pad_to_multiple_of: int | None,
    ) -> dict[str, list[list[int]]]:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if strategy is None:
            return {"input_ids": rows, "attention_mask": [[1] * len(row) for row in rows]}
        if strategy == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs max_length")
        length = max(len(row) for row in rows) if strategy == "longest" else max(max_length, *map(len, rows))
        if pad_to_multiple_of:
            length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
        pad_id = self.tokenizer.pad_token_id
        input_ids, attention_mask = [], []
        for row in rows:
            fill = length - len(row)
            if padding_side == "right":
                input_ids.append(row + [pad_id] * fill)
                attention_mask.append([1] * len(row) + [0] * fill)
            else:
                input_ids.append([pad_id] * fill + row)
                attention_mask.append([0] * fill + [1] * len(row))
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def apply_chat_template(self, conversation: Sequence[Any], **kwargs: Any) -> Any:
        """The chat template over one conversation or a batch; the rendered text by default.

        Structured content (``[{"type": "image", "image": ...}, {"type": "text", "text": ...}]``, as TRL
        writes it) becomes the template's plain string: each image a global ``<|image_N|>`` tag, then a
        newline before the text that follows it. With ``tokenize=True`` the rendered text and the images of
        the content go through this processor (``processor_kwargs`` are its keywords), so the result holds
        ``pixel_values`` and ``image_sizes`` too; ``return_dict=False`` returns only the ``input_ids``.
        """
        kwargs.setdefault("chat_template", self.chat_template)
        tokenize = kwargs.pop("tokenize", False)
        return_dict = kwargs.pop("return_dict", True)
        return_tensors = kwargs.pop("return_tensors", "pt")
        processor_kwargs = kwargs.pop("processor_kwargs", None) or {}
        if kwargs.pop("return_assistant_tokens_mask", False):
            raise ValueError("return_assistant_tokens_mask is not supported: the template has no generation markers")
        batched = bool(conversation) and not isinstance(conversation[0], dict)
        conversations = list(conversation) if batched else [conversation]
        texts = [
            self.tokenizer.apply_chat_template(_plain_messages(c), tokenize=False, **kwargs) for c in conversations
        ]
        if not tokenize:
            return texts if batched else texts[0]
        images = [_content_images(c) for c in conversations]
        encoded = self(
            text=texts,
            images=images if any(images) else None,
            return_tensors=return_tensors,
            **processor_kwargs,
        )
        return encoded if return_dict else encoded["input_ids"]

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "image_sizes"]


def _flat_images(images: Any, prompt_count: int) -> tuple[list[Image.Image], list[int] | None]:
    """All images in prompt order, and the per-prompt counts when they were given one list per prompt."""
    if images is None:
        return [], None
    if isinstance(images, Image.Image):
        return [images], None
    image_list = list(images)
    if image_list and all(isinstance(item, list | tuple) for item in image_list):
        if len(image_list) != prompt_count:
            raise ImageTokenMismatchError(
                f"images has {len(image_list)} per-prompt list(s) for {prompt_count} prompt(s); "
                "give one list per prompt"
            )
        return [image for group in image_list for image in group], [len(group) for group in image_list]
    return image_list, None


def _plain_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    plain = []
    number = 1
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            text = ""
            after_image = False
            for part in content:
                if part.get("type") == "image":
                    text += tag(number)
                    number += 1
                    after_image = True
                elif part.get("type") == "text":
                    text += ("\n" if after_image else "") + part["text"]
                    after_image = False
                else:
                    raise ValueError(f"message content of type {part.get('type')!r} is not supported (image, text)")
            content = text
        elif isinstance(content, str):
            number += len(IMAGE_TAG_RE.findall(content))
        plain.append({**message, "content": content})
    return plain


def _content_images(messages: Sequence[dict[str, Any]]) -> list[Image.Image]:
    """The images carried in structured message content, in order."""
    return [
        part["image"]
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image" and part.get("image") is not None
    ]


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


def portable_tokenizer_config(tokenizer: PreTrainedTokenizerBase, chat_template: str) -> dict[str, Any]:
    """A ``tokenizer_config.json`` that transformers 4.x (``AutoTokenizer``, ``LlamaTokenizerFast``) and 5.x load.

    5.x saves ``tokenizer_class: TokenizersBackend`` and a list ``extra_special_tokens``, both fatal to
    4.x; this writes the hub's layout instead: ``LlamaTokenizer``, ``added_tokens_decoder``,
    ``additional_special_tokens``, the named special tokens and the chat template inline. Loading
    flags and the hub's ``auto_map`` are left out (an export adds the ``auto_map`` it needs).
    """
    added = tokenizer.added_tokens_decoder
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("", add_special_tokens=True)["input_ids"][:1] == [bos]
    extra = getattr(tokenizer, "extra_special_tokens", None) or getattr(tokenizer, "additional_special_tokens", [])
    config: dict[str, Any] = {
        "add_bos_token": adds_bos,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(token_id): {
                "content": token.content,
                "lstrip": token.lstrip,
                "normalized": token.normalized,
                "rstrip": token.rstrip,
                "single_word": token.single_word,
                "special": token.special,
            }
            for token_id, token in sorted(added.items())
        },
        "additional_special_tokens": [str(token) for token in extra] if isinstance(extra, list) else [],
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": bool(tokenizer.clean_up_tokenization_spaces),
        "legacy": False,
        "model_max_length": int(tokenizer.model_max_length),
        "padding_side": tokenizer.padding_side,
        "processor_class": "Phi3VProcessor",
        "tokenizer_class": "LlamaTokenizer",
    }
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = getattr(tokenizer, name)
        if value is not None:
            config[name] = str(value)
    return config


def write_portable_tokenizer_config(
    save_directory: str | os.PathLike, tokenizer: PreTrainedTokenizerBase, chat_template: str
) -> None:
    """Replaces the ``tokenizer_config.json`` that ``save_pretrained`` wrote by :func:`portable_tokenizer_config`."""
    text = json.dumps(portable_tokenizer_config(tokenizer, chat_template), indent=2, sort_keys=True, ensure_ascii=False)
    atomic_write_text(Path(save_directory) / TOKENIZER_CONFIG_FILE, text + "\n")
