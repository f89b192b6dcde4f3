"""A small Phi-3-shaped tokenizer built in code, for the ``tiny`` preset, the tests and the CPU demo.

It has the real layout where it matters: 32000 base ids (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, byte
fallback ``<0x00>``..``<0xFF>`` at 3..258), the Phi-3 special tokens at their real ids 32000..32044
with the same ``rstrip`` flags (so ``<|assistant|>`` swallows the following newline; 32045..32063
of the model's 32064 embedding rows stay unused, as in the real checkpoint), a normalizer
that prepends ``▁`` and turns spaces into ``▁``, BOS added by default, ``<|endoftext|>`` as eos/pad and
the hub chat template. Its base vocabulary is only single characters (printable ASCII and ``▁``),
everything else falls back to bytes, so any text round-trips. Nothing is downloaded.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
from transformers import PreTrainedTokenizerFast

from phi3v_train.model.image_processing import Phi3VImageProcessor
from phi3v_train.model.processing import CHAT_TEMPLATE, Phi3VProcessor

BASE_VOCAB_SIZE = 32000
SPACE_MARK = "▁"
PLACEHOLDER_IDS = {
    **{n: 32001 + n for n in range(1, 5)},
    **{n: 32003 + n for n in range(5, 7)},
    **{n: 32004 + n for n in range(7, 40)},
}
NAMED_SPECIAL_TOKENS = {
    "<|endoftext|>": (32000, False),
    "<|assistant|>": (32001, True),
    "<|system|>": (32006, False),
    "<|end|>": (32007, False),
    "<|user|>": (32010, False),
    "<|image|>": (32044, True),
}


def special_tokens() -> dict[int, tuple[str, bool]]:
    """Id -> (content, rstrip) of the tokens after the base vocabulary, as in the hub tokenizer (ids 32000..32044)."""
    tokens = {token_id: (content, rstrip) for content, (token_id, rstrip) in NAMED_SPECIAL_TOKENS.items()}
    tokens.update({token_id: (f"<|placeholder{n}|>", True) for n, token_id in PLACEHOLDER_IDS.items()})
    return dict(sorted(tokens.items()))


def _base_vocab() -> dict[str, int]:
    pieces = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), SPACE_MARK]
    pieces += [chr(c) for c in range(0x21, 0x7F)]
    pieces += [f"<unused{i}>" for i in range(BASE_VOCAB_SIZE - len(pieces))]
    return {piece: i for i, piece in enumerate(pieces)}


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny tokenizer; deterministic, same ids on every call."""
    backend = Tokenizer(models.BPE(_base_vocab(), [], unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE_MARK), normalizers.Replace(" ", SPACE_MARK)])
    backend.decoder = decoders.Sequence(
        [decoders.Replace(SPACE_MARK, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    backend.add_special_tokens(
        [
            AddedToken("<unk>", normalized=False, special=True),
            AddedToken("<s>", normalized=False, special=True),
        ]
    )
    backend.add_tokens([AddedToken("</s>", rstrip=True, normalized=False, special=False)])
    backend.add_special_tokens(
        [
            AddedToken(content, rstrip=rstrip, normalized=False, special=True)
            for content, rstrip in special_tokens().values()
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        padding_side="right",
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )


def tiny_processor(num_crops: int = 4) -> Phi3VProcessor:
    """A :class:`Phi3VProcessor` over the tiny tokenizer and the standard image processor."""
    return Phi3VProcessor(Phi3VImageProcessor(num_crops=num_crops), build_tiny_tokenizer())
