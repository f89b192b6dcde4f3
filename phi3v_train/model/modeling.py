"""Native Phi-3(.5)-vision on current transformers: transformers' Phi-3 decoder, a CLIP vision tower and
the hub's HD image embedding, with parameter names exactly as in the hub checkpoint.

Module tree (and so the state-dict keys)::

    Phi3VForCausalLM
    ├── model: Phi3VModel                     transformers' Phi3Model (embed_tokens, layers, norm) plus
    │   └── vision_embed_tokens: Phi3VImageEmbedding
    │       ├── img_processor: Phi3VVisionTower
    │       │   └── vision_model               CLIP embeddings, pre_layrnorm, encoder.layers.0..22
    │       ├── glb_GN  [1, 1, 4C]             separator between the sub-crop grid and the global image
    │       ├── sub_GN  [1, 1, 1, 4C]          "newline" after every row of 12x12 merged patches
    │       └── img_projection                 Linear(4C, H) -> GELU -> Linear(H, H)
    └── lm_head

Differences from the hub code, all invisible in the outputs:

* The hub's ``vision_embed_tokens.wte`` is the *same* module as ``embed_tokens``. It is not registered
  here, so ``save_pretrained`` writes plain safetensors (the hub code hits the shared-tensor error), and
  a ``...wte.weight`` key in a checkpoint is accepted and dropped.
* The features come from CLIP's ``hidden_states[layer_idx]`` (-2). The layers after it and the
  ``post_layernorm`` never influence the output, so they are not modules (no optimizer, LoRA target
  or DDP ever sees them): their tensors ride along in :attr:`Phi3VVisionTower.carried`, read from the
  checkpoint loaded and written into every checkpoint saved, so a save has the hub's full key set.
* Padding crops (all zero, beyond an image's ``1 + rows*cols``) are not run through CLIP; the hub code
  runs them and discards the result. ``pixel_values`` may also hold only the real crops (the ragged
  layout the training collator sends, :class:`Phi3VImageEmbedding`).
* With ``labels``, ``lm_head`` runs only at the labelled positions (:func:`labelled_positions_loss`).

Image positions are the negative ids the hub processor writes (``-k`` for image ``k`` of a prompt).
Features are written at the negative positions in batch- then sequence-major order, consuming the
images in ``pixel_values`` order, so ``pixel_values`` holds all images of a batch, row after row.
"""

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import CLIPVisionConfig, GenerationMixin
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.models.clip.modeling_clip import CLIPEncoder, CLIPPreTrainedModel, CLIPVisionEmbeddings
from transformers.models.phi3.modeling_phi3 import Phi3Model, Phi3PreTrainedModel
from transformers.utils.deprecation import deprecate_kwarg

from phi3v_data.image_tokens import CROP_SIZE
from phi3v_train.errors import ImageTokenMismatchError
from phi3v_train.model.configuration import Phi3VConfig
from phi3v_train.model.processing import IGNORE_INDEX

MERGED_SIDE = 12  # 24x24 CLIP patches per crop, merged 2x2
WTE_ALIAS_KEY = r"vision_embed_tokens\.wte\.weight$"
CARRIED_PREFIX = "vision_embed_tokens.img_processor."


class Phi3VVisionTower(CLIPPreTrainedModel):
    """CLIP ViT vision encoder run up to the layer the image features come from.

    Parameter names are those of the CLIPVisionModel that the hub checkpoint was saved from
    (``vision_model.embeddings``, ``vision_model.pre_layrnorm``, ``vision_model.encoder.layers.N``).
    Returns the hidden state after ``num_layers`` encoder layers, CLS token included. ``carried`` holds
    the tensors of the later layers and of ``post_layernorm`` under their checkpoint names, outside the
    module tree (plain CPU tensors: not parameters, not buffers).
    """

    config: CLIPVisionConfig
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: CLIPVisionConfig, num_layers: int):
        super().__init__(config)
        self.vision_model = nn.Module()
        self.vision_model.embeddings = CLIPVisionEmbeddings(config)
        self.vision_model.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.vision_model.encoder = CLIPEncoder(config)
        layers = self.vision_model.encoder.layers
        unused = {f"vision_model.encoder.layers.{n}": layers[n] for n in range(num_layers, config.num_hidden_layers)}
        unused["vision_model.post_layernorm"] = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.carried: dict[str, torch.Tensor] = {
            f"{prefix}.{name}": tensor.detach().to("cpu", copy=True) if tensor.device.type != "meta" else tensor
            for prefix, module in unused.items()
            for name, tensor in module.state_dict().items()
        }
        del self.vision_model.encoder.layers[num_layers:]
        self.post_init()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden_states = self.vision_model.embeddings(pixel_values)
        hidden_states = self.vision_model.pre_layrnorm(hidden_states)
        return self.vision_model.encoder(inputs_embeds=hidden_states).last_hidden_state


class Phi3VImageEmbedding(nn.Module):
    """The hub's ``Phi3ImageEmbedding``: CLIP features of each HD image, merged 2x2, laid out with
    newline and separator tokens, then projected to the language model's width."""

    def __init__(self, config: Phi3VConfig):
        super().__init__()
        dim = config.image_dim_out
        self.hd_transform_order = config.hd_transform_order
        self.img_processor = Phi3VVisionTower(config.vision_config, config.num_vision_layers_used)
        self.glb_GN = nn.Parameter(torch.zeros(1, 1, 4 * dim))
        self.sub_GN = nn.Parameter(torch.zeros(1, 1, 1, 4 * dim))
        self.img_projection = nn.Sequential(
            nn.Linear(4 * dim, config.hidden_size), nn.GELU(), nn.Linear(config.hidden_size, config.hidden_size)
        )

    def forward(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
        """``pixel_values`` and ``image_sizes`` [n, 2] (padded H, W) -> features [total image tokens, hidden]
        for all images, in order.

        ``pixel_values`` is either the hub's padded layout [n, num_crops+1, 3, 336, 336] or the ragged one
        [sum of crops, 3, 336, 336]: each image's ``1 + rows*cols`` real crops (global view first), image
        after image, with the crop counts given by ``image_sizes``.
        """
        grids = _crop_grids(pixel_values, image_sizes)
        if pixel_values.ndim == 5:
            used_crops = torch.cat([pixel_values[i, : 1 + rows * cols] for i, (rows, cols) in enumerate(grids)])
        else:
            used_crops = pixel_values
        patches = self.img_processor(used_crops.to(self.img_processor.dtype))[:, 1:]
        merged = _merge_2x2(patches)
        images, start = [], 0
        for rows, cols in grids:
            global_crop, sub_crops = merged[start], merged[start + 1 : start + 1 + rows * cols]
            start += 1 + rows * cols
            grid = sub_crops.reshape(rows, cols, MERGED_SIDE, MERGED_SIDE, -1).transpose(1, 2)
            sub = self._with_newlines(grid.reshape(rows * MERGED_SIDE, cols * MERGED_SIDE, -1))
            glb = self._with_newlines(global_crop)
            parts = (sub, self.glb_GN[0], glb) if self.hd_transform_order == "sub_glb" else (glb, self.glb_GN[0], sub)
            images.append(torch.cat(parts))
        return self.img_projection(torch.cat(images))

    def _with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        """[rows, cols, 4C] -> [rows * (cols + 1), 4C]: ``sub_GN`` appended after every row."""
        newline = self.sub_GN[0].expand(grid.shape[0], 1, -1)
        return torch.cat([grid, newline], dim=1).reshape(-1, grid.shape[-1])


def _crop_grids(pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> list[tuple[int, int]]:
    """(rows, cols) of 336-px crops per image, checked against the crops ``pixel_values`` holds (padded
    [n, num_crops+1, 3, 336, 336] or ragged [sum of crops, 3, 336, 336])."""
    padded = pixel_values.ndim == 5 and pixel_values.shape[0] == image_sizes.shape[0]
    if image_sizes.ndim != 2 or not (padded or pixel_values.ndim == 4):
        raise ImageTokenMismatchError(
            f"pixel_values must be [n_images, num_crops+1, 3, 336, 336] (padded) or [total crops, 3, 336, 336] "
            f"(ragged) and image_sizes [n_images, 2], got {tuple(pixel_values.shape)} and {tuple(image_sizes.shape)}"
        )
    grids = []
    for height, width in image_sizes.tolist():
        if height % CROP_SIZE or width % CROP_SIZE or height <= 0 or width <= 0:
            raise ImageTokenMismatchError(
                f"image_sizes must be positive multiples of {CROP_SIZE}, got {height}x{width}"
            )
        rows, cols = int(height) // CROP_SIZE, int(width) // CROP_SIZE
        if padded and 1 + rows * cols > pixel_values.shape[1]:
            raise ImageTokenMismatchError(
                f"an image of {height}x{width} needs {1 + rows * cols} crops, "
                f"pixel_values holds {pixel_values.shape[1]}"
            )
        grids.append((rows, cols))
    needed = sum(1 + rows * cols for rows, cols in grids)
    if not padded and needed != pixel_values.shape[0]:
        raise ImageTokenMismatchError(
            f"image_sizes {image_sizes.tolist()} need {needed} crops in all, ragged pixel_values holds "
            f"{pixel_values.shape[0]}"
        )
    return grids


def _merge_2x2(patches: torch.Tensor) -> torch.Tensor:
    """[n, 576, C] -> [n, 12, 12, 4C]: each 2x2 block of neighbouring patches, channels in (dh, dw, c) order."""
    n, _, channels = patches.shape
    side = MERGED_SIDE
    blocks = patches.reshape(n, side, 2, side, 2, channels).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(n, side, side, 4 * channels)


class Phi3VPreTrainedModel(Phi3PreTrainedModel):
    config: Phi3VConfig
    _no_split_modules: ClassVar[list[str]] = ["Phi3DecoderLayer", "CLIPEncoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, Phi3VImageEmbedding):
            init.zeros_(module.glb_GN)
            init.zeros_(module.sub_GN)


class Phi3VModel(Phi3VPreTrainedModel, Phi3Model):
    """transformers' ``Phi3Model`` whose input embeddings carry the image features."""

    def __init__(self, config: Phi3VConfig):
        super().__init__(config)
        self.vision_embed_tokens = Phi3VImageEmbedding(config)
        carried = [re.escape(CARRIED_PREFIX + name) + "$" for name in self.vision_embed_tokens.img_processor.carried]
        self._keys_to_ignore_on_load_unexpected = [WTE_ALIAS_KEY, *carried]
        self.vision_every_forward = False
        # Phi3Model.__init__ already ran post_init; run it again so the vision modules get initialised too
        # (modules initialised the first time are skipped).
        self.post_init()

    def embed_with_images(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with the image features written at the negative (image) positions.

        With ``vision_every_forward`` set, a call without images runs a zero dummy image through the image
        embedding where real images would go and adds ``0 * features.sum()``: the output is unchanged, and
        every rank of a DDP, ZeRO-3 or FSDP run calls the same modules in the same order whatever its
        batch holds (ZeRO-3 and FSDP gather parameters in call order; DDP waits for every gradient).
        """
        image_mask = input_ids < 0
        embeds = self.embed_tokens(input_ids.clamp(min=0))
        num_positions = int(image_mask.sum())
        if not num_positions:
            # As in the hub model, whose generation passes the images at every step: no positions, no images.
            pixel_values = image_sizes = None
        elif image_sizes is not None and not torch.is_tensor(image_sizes):
            image_sizes = torch.as_tensor(image_sizes, dtype=torch.long, device=input_ids.device)
        if pixel_values is None or image_sizes is None:
            if num_positions:
                raise ImageTokenMismatchError(
                    f"input_ids mark {num_positions} image positions but no pixel_values/image_sizes were given"
                )
            if not self.vision_every_forward:
                return embeds
            features = self.vision_embed_tokens(*dummy_image(embeds.device))
            return embeds + 0.0 * features.sum().to(embeds.dtype)
        features = self.vision_embed_tokens(pixel_values, image_sizes)
        if features.shape[0] != num_positions:
            raise ImageTokenMismatchError(
                f"input_ids mark {num_positions} image positions but the {image_sizes.shape[0]} image(s) "
                f"(image_sizes {image_sizes.tolist()}) give {features.shape[0]} image features"
            )
        embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), features.to(embeds.dtype))
        return nn.functional.dropout(embeds, p=self.config.embd_pdrop, training=self.training)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_with_images(input_ids, pixel_values, image_sizes)
        return super().forward(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )


def dummy_image(device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A zero image of one 336x336 crop plus its global view: pixel_values [1, 2, 3, 336, 336], sizes [1, 2]."""
    pixel_values = torch.zeros(1, 2, 3, CROP_SIZE, CROP_SIZE, device=device)
    return pixel_values, torch.tensor([[CROP_SIZE, CROP_SIZE]], device=device)


def labelled_positions_loss(
    hidden_states: torch.Tensor,
    labels: torch.Tensor,
    lm_head: nn.Module,
    num_items_in_batch: torch.Tensor | int | None = None,
    shift_labels: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    cross_entropy: Callable[..., torch.Tensor] = nn.functional.cross_entropy,
) -> torch.Tensor:
    """transformers' causal-LM loss, with ``lm_head`` applied only where a label is.

    Labels are shifted left (position ``t`` predicts ``labels[t + 1]``) unless ``shift_labels`` are given;
    the cross-entropy is taken in fp32, summed and divided by ``num_items_in_batch`` when given (the
    Trainer's count over the accumulated micro-batches), else averaged. Same value and gradients as
    ``ForCausalLMLoss`` over the full logits. ``cross_entropy`` has ``nn.functional.cross_entropy``'s
    signature (``--liger`` passes liger-kernel's).
    """
    if shift_labels is None:
        shift_labels = nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    shift_labels = shift_labels.to(hidden_states.device)
    supervised = shift_labels != ignore_index
    logits = lm_head(hidden_states[supervised]).float()
    targets = shift_labels[supervised]
    if num_items_in_batch is None:
        return cross_entropy(logits, targets)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(logits.device)
    return cross_entropy(logits, targets, reduction="sum") / num_items_in_batch


class Phi3VForCausalLM(Phi3VPreTrainedModel, GenerationMixin):
    """Phi-3(.5)-vision for causal language modelling; loads and saves the hub checkpoint layout."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embed_tokens.weight"}
    cross_entropy: Callable[..., torch.Tensor] = staticmethod(nn.functional.cross_entropy)  # of the training loss

    def __init__(self, config: Phi3VConfig):
        super().__init__(config)
        self.model = Phi3VModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @property
    def carried_tensors(self) -> dict[str, torch.Tensor]:
        """The CLIP tensors this model does not run, by checkpoint name (see :class:`Phi3VVisionTower`)."""
        carried = self.model.vision_embed_tokens.img_processor.carried
        return {f"model.{CARRIED_PREFIX}{name}": tensor for name, tensor in carried.items()}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None, *args: Any, **kwargs: Any):
        """transformers' loading, then the carried CLIP tensors read from the same checkpoint files.

        A checkpoint without them (saved by an older phi3v) leaves zeros: they never reach an output.
        """
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        loaded = model[0] if isinstance(model, tuple) else model
        names = list(loaded.carried_tensors)
        found = _read_checkpoint_tensors(str(pretrained_model_name_or_path), names, kwargs)
        carried = loaded.model.vision_embed_tokens.img_processor.carried
        for name in names:
            short = name.removeprefix(f"model.{CARRIED_PREFIX}")
            tensor = found.get(name)
            carried[short] = tensor if tensor is not None else torch.zeros(carried[short].shape, device="cpu")
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, state_dict: dict | None = None, **kwargs):
        """transformers' saving, with the carried CLIP tensors added (in the vision tower's dtype)."""
        state_dict = dict(self.state_dict() if state_dict is None else state_dict)
        dtype = self.model.vision_embed_tokens.img_processor.dtype
        for name, tensor in self.carried_tensors.items():
            if name not in state_dict and tensor.device.type != "meta":
                state_dict[name] = tensor.to(dtype)
        return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Loss (when ``labels`` are given; -100 is ignored, labels are shifted inside) and logits.

        The loss is computed at the labelled positions only (:func:`labelled_positions_loss`). In training
        mode a call with ``labels`` returns no logits, so the ``[tokens x vocab]`` logits are never built;
        in eval mode the logits are full, as the hub model returns them. ``return_dict=False`` gives the
        output as a tuple, as in the hub model.
        """
        return_dict = kwargs.pop("return_dict", None)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            pixel_values=pixel_values,
            image_sizes=image_sizes,
            use_cache=use_cache,
            **kwargs,
        )
        loss = logits = None
        if labels is not None:
            loss = labelled_positions_loss(
                outputs.last_hidden_state,
                labels,
                self.lm_head,
                num_items_in_batch=kwargs.get("num_items_in_batch"),
                shift_labels=kwargs.get("shift_labels"),
                cross_entropy=self.cross_entropy,
            )
        if labels is None or not self.training:
            logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        output = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output.to_tuple() if return_dict is False else output

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def prepare_inputs_for_generation(
        self, input_ids, cache=None, pixel_values=None, image_sizes=None, use_cache=True, **kwargs
    ):
        """Images go in whenever the ids fed to the model hold image positions: the prefill, every step
        without a cache, and the recompute below; cached decoding steps never re-apply them."""
        original_max = self.config.original_max_position_embeddings
        if cache is not None and input_ids.shape[1] >= original_max + 1 and cache.get_seq_length() <= original_max:
            # As transformers' Phi3ForCausalLM: once the sequence outgrows the short rope range, recompute
            # everything with the long factors instead of mixing both in one cache.
            cache = None
            kwargs["next_sequence_length"] = None
        model_inputs = super().prepare_inputs_for_generation(input_ids, cache=cache, use_cache=use_cache, **kwargs)
        ids = model_inputs.get("input_ids")
        has_images = ids is not None and bool((ids < 0).any())
        model_inputs["pixel_values"] = pixel_values if has_images else None
        model_inputs["image_sizes"] = image_sizes if has_images else None
        return model_inputs


def _read_checkpoint_tensors(source: str, names: list[str], load_kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``names`` from the safetensors of a folder or hub repo (the files ``from_pretrained`` just used)."""
    from safetensors import safe_open
    from transformers.utils import cached_file

    options = {
        key: load_kwargs[key]
        for key in ("cache_dir", "revision", "token", "local_files_only", "subfolder")
        if key in load_kwargs
    }

    def resolve(filename: str) -> str | None:
        return cached_file(source, filename, _raise_exceptions_for_missing_entries=False, **options)

    index = resolve("model.safetensors.index.json")
    if index is not None:
        weight_map = json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"]
        files = sorted({weight_map[name] for name in names if name in weight_map})
    else:
        files = ["model.safetensors"]
    found: dict[str, torch.Tensor] = {}
    for filename in files:
        path = resolve(filename)
        if path is None:
            continue
        with safe_open(path, "pt") as checkpoint:
            available = set(checkpoint.keys())
            found.update({name: checkpoint.get_tensor(name) for name in names if name in available})
    return found


__all__ = [
    "Phi3VForCausalLM",
    "Phi3VImageEmbedding",
    "Phi3VModel",
    "Phi3VPreTrainedModel",
    "Phi3VVisionTower",
]
