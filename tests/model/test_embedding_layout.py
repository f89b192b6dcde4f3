"""Independent check of the image-embedding layout against SPEC section 2, "Vision embedding".

The expected features are built here with plain loops from CLIP hidden states computed by
transformers' own ``CLIPVisionModel`` (full depth, ``hidden_states[-2]``), not by the model's helpers.
The separators get distinctive values so that a misplaced newline or separator shows.
"""

import pytest
import torch
from model_inputs import image_batch, prompt_ids, right_pad
from transformers import CLIPVisionModel

from phi3v_data.image_tokens import tokens_for_grid
from phi3v_train.model.configuration import Phi3VConfig
from phi3v_train.model.modeling import Phi3VImageEmbedding
from phi3v_train.model.sizes import size_config

SUB_GN_VALUE = 7.0
GLB_GN_VALUE = -5.0


def _reference_clip(model) -> CLIPVisionModel:
    """transformers' CLIPVisionModel with the full tower of the config: the model's weights, plus random
    weights for the last layer and post-norm the model does not build (they must not matter)."""
    config = model.config.vision_config
    reference = CLIPVisionModel(config).eval()
    ours = model.model.vision_embed_tokens.img_processor.state_dict()
    state = {key.removeprefix("vision_model."): value for key, value in ours.items()}
    missing, unexpected = reference.load_state_dict(state, strict=False)
    last = config.num_hidden_layers - 1
    assert not unexpected
    assert all(key.startswith((f"encoder.layers.{last}.", "post_layernorm.")) for key in missing)
    return reference


def _expected_image_sequence(hidden: torch.Tensor, rows: int, cols: int, sub_gn, glb_gn) -> list[torch.Tensor]:
    """SPEC: 24x24 patches per crop, 2x2 merge with channels (dh, dw, c), sub-crop grid row-major with
    sub_GN after every row, then glb_GN, then the global crop's 12x12 with sub_GN after every row."""
    channels = hidden.shape[-1]

    def merged(crop: int, i: int, j: int) -> torch.Tensor:
        patches = hidden[crop, 1:].reshape(24, 24, channels)
        return torch.cat([patches[2 * i + dh, 2 * j + dw] for dh in (0, 1) for dw in (0, 1)])

    sequence = []
    for r in range(rows * 12):
        for c in range(cols * 12):
            crop = 1 + (r // 12) * cols + (c // 12)
            sequence.append(merged(crop, r % 12, c % 12))
        sequence.append(sub_gn)
    sequence.append(glb_gn)
    for i in range(12):
        for j in range(12):
            sequence.append(merged(0, i, j))
        sequence.append(sub_gn)
    return sequence


def test_features_at_image_positions_follow_the_spec_layout(tiny_model):
    embedding = tiny_model.model.vision_embed_tokens
    with torch.no_grad():
        embedding.sub_GN.fill_(SUB_GN_VALUE)
        embedding.glb_GN.fill_(GLB_GN_VALUE)
    row_grids = [[(2, 3)], [(1, 1), (1, 2)]]
    grids = [grid for row in row_grids for grid in row]
    pixel_values, image_sizes = image_batch(grids, num_crops=6, seed=11)
    rows = [prompt_ids(row) for row in row_grids]
    ids, mask = right_pad(rows)

    with torch.no_grad():
        clip = _reference_clip(tiny_model)
        expected = []
        for image, (rows_, cols_) in enumerate(grids):
            hidden = clip(pixel_values[image], output_hidden_states=True).hidden_states[-2]
            sequence = _expected_image_sequence(
                hidden, rows_, cols_, embedding.sub_GN.reshape(-1), embedding.glb_GN.reshape(-1)
            )
            assert len(sequence) == tokens_for_grid(rows_, cols_)
            expected.extend(sequence)
        expected_merged = torch.stack(expected)

        captured = {}
        projection_hook = embedding.img_projection.register_forward_hook(
            lambda module, args, output: captured.update(merged=args[0])
        )
        decoder_hook = tiny_model.model.layers[0].register_forward_pre_hook(
            lambda module, args, kwargs: captured.update(embeds=args[0] if args else kwargs["hidden_states"]),
            with_kwargs=True,
        )
        tiny_model(input_ids=ids, attention_mask=mask, pixel_values=pixel_values, image_sizes=image_sizes)
        projection_hook.remove()
        decoder_hook.remove()

        assert captured["merged"].shape == expected_merged.shape
        assert torch.allclose(captured["merged"], expected_merged, atol=1e-5)
        assert (captured["merged"][:, :] == SUB_GN_VALUE).all(dim=1).sum() == sum(r * 12 + 12 for r, _ in grids)

        embeds = captured["embeds"]
        image_positions = ids < 0
        assert torch.allclose(embeds[image_positions], embedding.img_projection(expected_merged), atol=1e-5)
        text = tiny_model.model.embed_tokens(ids.clamp(min=0))
        assert torch.equal(embeds[~image_positions], text[~image_positions])


@pytest.mark.parametrize("order", ["sub_glb", "glb_sub"])
def test_separator_positions_for_each_order(order):
    """With CLIP features zeroed out, only the separators are non-zero: their positions give the order."""
    fields = size_config("tiny").to_dict()
    fields["embd_layer"] = {**fields["embd_layer"], "hd_transform_order": order}
    embedding = Phi3VImageEmbedding(Phi3VConfig(**fields)).eval()
    with torch.no_grad():
        embedding.sub_GN.fill_(1.0)
        embedding.glb_GN.fill_(2.0)
    embedding.img_processor.forward = lambda pixel_values: torch.zeros(pixel_values.shape[0], 577, 32)
    captured = {}
    embedding.img_projection.register_forward_hook(lambda module, args, output: captured.update(merged=args[0]))
    pixel_values, image_sizes = image_batch([(1, 2)], num_crops=2)
    with torch.no_grad():
        embedding(pixel_values, image_sizes)
    marks = captured["merged"][:, 0].tolist()
    sub_part = [0.0] * 24 + [1.0]
    glb_part = [0.0] * 12 + [1.0]
    if order == "sub_glb":
        assert marks == sub_part * 12 + [2.0] + glb_part * 12
    else:
        assert marks == glb_part * 12 + [2.0] + sub_part * 12
