"""Ragged crops: the collator sends only each image's real crops; loss and gradients equal the padded layout's."""

from __future__ import annotations

import pytest
import torch
from throughput_items import assert_same_gradients, loss_and_gradients, make_item, mixed_items

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.errors import ImageTokenMismatchError
from phi3v_train.model.sizes import build_model


def test_collator_sends_only_the_real_crops_in_image_order():
    items = mixed_items(num_crops=4)
    padded = Phi3VDataCollator(ragged_crops=False)(items)
    ragged = Phi3VDataCollator()(items)
    assert padded["pixel_values"].shape == (4, 5, 3, 336, 336)
    # grids (1,2), (2,2), (2,1), (1,1): 3 + 5 + 3 + 2 crops instead of 4 x 5
    assert ragged["pixel_values"].shape == (13, 3, 336, 336)
    assert torch.equal(ragged["image_sizes"], padded["image_sizes"])
    assert torch.equal(ragged["pixel_values"][:3], padded["pixel_values"][0, :3])
    assert torch.equal(ragged["pixel_values"][3:8], padded["pixel_values"][1])
    assert torch.equal(ragged["pixel_values"][11:], padded["pixel_values"][3, :2])
    assert ragged["pixel_values"].nbytes * 20 == padded["pixel_values"].nbytes * 13


def test_ragged_and_padded_crops_give_the_same_loss_and_gradients():
    model = build_model("tiny", seed=0).train()
    items = mixed_items(num_crops=4)
    padded_loss, padded_grads = loss_and_gradients(model, Phi3VDataCollator(ragged_crops=False)(items))
    ragged_loss, ragged_grads = loss_and_gradients(model, Phi3VDataCollator()(items))
    assert ragged_loss == padded_loss
    assert_same_gradients(padded_grads, ragged_grads, atol=1e-6)
    patch = "model.vision_embed_tokens.img_processor.vision_model.embeddings.patch_embedding.weight"
    assert padded_grads[patch].abs().sum() > 0


def test_ragged_crop_count_mismatch_names_both_counts():
    model = build_model("tiny", seed=0).eval()
    batch = Phi3VDataCollator()([make_item([(1, 2)], [3869, 32000], num_crops=2)])
    batch["pixel_values"] = batch["pixel_values"][:2]
    with pytest.raises(ImageTokenMismatchError, match=r"need 3 crops in all, ragged pixel_values holds 2"):
        model(**batch)
