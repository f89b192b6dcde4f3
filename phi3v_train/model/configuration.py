"""``Phi3VConfig``: reads the hub ``config.json`` of Phi-3(.5)-vision as it is.

The language model part is transformers' own ``Phi3Config``. On top of it:

* the hub's ``rope_scaling`` of type ``"su"`` becomes transformers' ``"longrope"`` parameters
  (same short/long factors; the long set is used once ``max position + 1 > 4096``, and cos/sin
  are scaled by ``sqrt(1 + ln(32)/ln(4096))``);
* ``embd_layer`` and ``img_processor`` are kept as the hub writes them and checked;
* ``vision_config`` (optional, ``CLIPVisionConfig`` fields) overrides the CLIP ViT-L/14-336 tower
  that the hub code hard-codes; keys it leaves out keep the ViT-L/14-336 values;
* a ``_attn_implementation`` of ``flash_attention_2`` saved in the hub file is dropped when
  flash-attn is not installed, so loading falls back to sdpa instead of failing.
"""

import logging
from typing import Any, ClassVar

from transformers import CLIPVisionConfig, Phi3Config
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import is_flash_attn_2_available

from phi3v_data.image_tokens import CROP_SIZE, TOKENS_PER_CROP
from phi3v_train.errors import ModelConfigError

logger = logging.getLogger(__name__)

CLIP_VIT_L_14_336: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 336,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "num_channels": 3,
}

DEFAULT_EMBD_LAYER: dict[str, Any] = {
    "embedding_cls": "image",
    "hd_transform_order": "sub_glb",
    "projection_cls": "mlp",
    "use_hd_transform": True,
    "with_learnable_separator": True,
}

DEFAULT_IMG_PROCESSOR: dict[str, Any] = {
    "image_dim_out": 1024,
    "model_name": "openai/clip-vit-large-patch14-336",
    "name": "clip_vision_model",
    "num_img_tokens": 144,
}

# The hub code's defaults for keys its config.json leaves out.
DEFAULT_LAYER_IDX = -2
DEFAULT_TYPE_FEATURE = "patch"
HD_TRANSFORM_ORDERS = ("sub_glb", "glb_sub")
PATCHES_PER_SIDE = 24


class Phi3VConfig(Phi3Config):
    r"""Configuration of a Phi-3(.5)-vision model (``model_type = "phi3_v"``).

    embd_layer (`dict`, *optional*):
        The hub's image-embedding settings: ``hd_transform_order`` ("sub_glb" or "glb_sub"),
        ``projection_cls`` ("mlp"), ``use_hd_transform`` and ``with_learnable_separator`` (both true).
    img_processor (`dict`, *optional*):
        The hub's vision-tower settings: ``image_dim_out`` (CLIP hidden size), ``num_img_tokens``
        (144), optional ``layer_idx`` (default -2: the CLIP hidden state the features come from) and
        ``type_feature`` ("patch": the CLS token is dropped).
    vision_config (`dict` or `CLIPVisionConfig`, *optional*):
        Overrides of the CLIP ViT-L/14-336 vision tower.
    """

    model_type = "phi3_v"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "vision_config": SubConfigSpec(CLIPVisionConfig, init_kwargs=CLIP_VIT_L_14_336)
    }

    vocab_size: int = 32064
    max_position_embeddings: int = 131072
    eos_token_id: int | list[int] | None = 2
    sliding_window: int | None = 262144
    embd_layer: dict | None = None
    img_processor: dict | None = None
    vision_config: dict | CLIPVisionConfig | None = None

    def __post_init__(self, **kwargs):
        self.embd_layer = {**DEFAULT_EMBD_LAYER, **(self.embd_layer or {})}
        self.img_processor = {**DEFAULT_IMG_PROCESSOR, **(self.img_processor or {})}
        if self.vision_config is None or isinstance(self.vision_config, dict):
            self.vision_config = {**CLIP_VIT_L_14_336, **(self.vision_config or {})}
        kwargs = _drop_unavailable_flash_attention(kwargs)
        super().__post_init__(**kwargs)
        self._check_vision_settings()

    def convert_rope_params_to_dict(self, default_theta: int | float = 10_000.0, ignore_keys=None, **kwargs):
        rope_scaling = kwargs.pop("rope_scaling", None)
        if rope_scaling is not None:
            self.rope_parameters = _longrope_from_hub(
                rope_scaling, self.max_position_embeddings, self.original_max_position_embeddings
            )
        return super().convert_rope_params_to_dict(default_theta=default_theta, ignore_keys=ignore_keys, **kwargs)

    @property
    def layer_idx(self) -> int:
        """The CLIP hidden state the image features come from (``hidden_states[layer_idx]``)."""
        return int(self.img_processor.get("layer_idx", DEFAULT_LAYER_IDX))

    @property
    def num_vision_layers_used(self) -> int:
        """How many CLIP encoder layers run: the ones after ``layer_idx`` would never be used."""
        total = self.vision_config.num_hidden_layers
        return self.layer_idx if self.layer_idx >= 0 else total + 1 + self.layer_idx

    @property
    def hd_transform_order(self) -> str:
        return self.embd_layer["hd_transform_order"]

    @property
    def image_dim_out(self) -> int:
        return int(self.img_processor["image_dim_out"])

    def to_dict(self) -> dict[str, Any]:
        """Also writes the hub's ``rope_scaling``/``rope_theta`` keys so the hub code reads the same rope."""
        output = super().to_dict()
        rope = output.get("rope_parameters") or {}
        if rope.get("rope_type") == "longrope":
            output["rope_scaling"] = {
                "type": "su",
                "short_factor": list(rope["short_factor"]),
                "long_factor": list(rope["long_factor"]),
            }
        if "rope_theta" in rope:
            output["rope_theta"] = rope["rope_theta"]
        return output

    def _check_vision_settings(self) -> None:
        problems = []
        embd, proc, vision = self.embd_layer, self.img_processor, self.vision_config
        if embd.get("embedding_cls") != "image":
            problems.append(f"embd_layer.embedding_cls must be 'image', got {embd.get('embedding_cls')!r}")
        if embd.get("hd_transform_order") not in HD_TRANSFORM_ORDERS:
            problems.append(
                f"embd_layer.hd_transform_order must be one of {HD_TRANSFORM_ORDERS}, "
                f"got {embd.get('hd_transform_order')!r}"
            )
        if embd.get("projection_cls") != "mlp":
            problems.append(f"embd_layer.projection_cls must be 'mlp', got {embd.get('projection_cls')!r}")
        if embd.get("use_hd_transform") is not True or embd.get("with_learnable_separator") is not True:
            problems.append("embd_layer.use_hd_transform and embd_layer.with_learnable_separator must both be true")
        if proc.get("type_feature", DEFAULT_TYPE_FEATURE) != DEFAULT_TYPE_FEATURE:
            problems.append(f"img_processor.type_feature must be 'patch', got {proc.get('type_feature')!r}")
        if self.image_dim_out != vision.hidden_size:
            problems.append(
                f"img_processor.image_dim_out ({self.image_dim_out}) must equal the CLIP hidden size "
                f"({vision.hidden_size})"
            )
        if vision.image_size != CROP_SIZE or vision.image_size // vision.patch_size != PATCHES_PER_SIDE:
            problems.append(
                f"the vision tower must see {CROP_SIZE}px crops as {PATCHES_PER_SIDE}x{PATCHES_PER_SIDE} patches "
                f"(image_size {CROP_SIZE}, patch_size 14), got image_size {vision.image_size} and "
                f"patch_size {vision.patch_size}"
            )
        if int(proc.get("num_img_tokens", TOKENS_PER_CROP)) != TOKENS_PER_CROP:
            problems.append(f"img_processor.num_img_tokens must be {TOKENS_PER_CROP}, got {proc.get('num_img_tokens')}")
        if not 0 <= self.num_vision_layers_used <= vision.num_hidden_layers:
            problems.append(
                f"img_processor.layer_idx {self.layer_idx} is outside the {vision.num_hidden_layers}-layer vision tower"
            )
        if problems:
            raise ModelConfigError("invalid Phi3VConfig:\n  - " + "\n  - ".join(problems))


def _longrope_from_hub(
    rope_scaling: dict[str, Any], max_position_embeddings: int, original_max_position_embeddings: int
) -> dict[str, Any]:
    """The hub's ``{"type": "su", "short_factor": [...], "long_factor": [...]}`` as transformers' longrope.

    ``factor`` (131072/4096 = 32) gives the cos/sin scale ``sqrt(1 + ln(factor)/ln(4096))`` of the hub code.
    """
    rope_type = rope_scaling.get("rope_type", rope_scaling.get("type"))
    if rope_type not in ("su", "longrope"):
        raise ModelConfigError(f"rope_scaling type must be 'su' (or 'longrope'), got {rope_type!r}")
    missing = [key for key in ("short_factor", "long_factor") if key not in rope_scaling]
    if missing:
        raise ModelConfigError(f"rope_scaling of type {rope_type!r} lacks {', '.join(missing)}")
    params = {key: value for key, value in rope_scaling.items() if key != "type"}
    params["rope_type"] = "longrope"
    params.setdefault("original_max_position_embeddings", original_max_position_embeddings)
    params.setdefault("factor", max_position_embeddings / original_max_position_embeddings)
    return params


def _drop_unavailable_flash_attention(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The hub config.json stores ``_attn_implementation: flash_attention_2``; without flash-attn use the default."""
    requested = kwargs.get("_attn_implementation")
    if requested == "flash_attention_2" and not is_flash_attn_2_available():
        logger.info("config.json asks for flash_attention_2 but flash-attn is not installed; using the default (sdpa)")
        kwargs = {key: value for key, value in kwargs.items() if key != "_attn_implementation"}
    return kwargs


__all__ = ["Phi3VConfig"]
