"""Phi3VImageProcessor against SPEC section 2/3 and against a step-by-step reference of the hub code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from reference.hd_transform import reference_pixel_values

from phi3v_train.model.image_processing import CLIP_MEAN, CLIP_STD, Phi3VImageProcessor

# SPEC section 3: (width, height, num_crops) -> (padded H, padded W, tokens)
SPEC_TABLE = {
    (336, 336, 1): (336, 336, 313),
    (336, 336, 4): (672, 672, 757),
    (336, 336, 16): (1344, 1344, 2509),
    (320, 240, 1): (336, 336, 313),
    (320, 240, 4): (672, 672, 757),
    (320, 240, 16): (1008, 1344, 1921),
    (640, 480, 1): (336, 336, 313),
    (640, 480, 4): (672, 672, 757),
    (640, 480, 16): (1008, 1344, 1921),
    (1024, 768, 1): (336, 336, 313),
    (1024, 768, 4): (672, 672, 757),
    (1024, 768, 16): (1008, 1344, 1921),
    (1700, 2200, 1): (336, 336, 313),
    (1700, 2200, 4): (672, 672, 757),
    (1700, 2200, 16): (1344, 1344, 2509),
    (2200, 1700, 1): (336, 336, 313),
    (2200, 1700, 4): (672, 672, 757),
    (2200, 1700, 16): (1344, 1344, 2509),
    (1000, 200, 1): (336, 336, 313),
    (1000, 200, 4): (336, 1344, 745),
    (1000, 200, 16): (672, 2688, 2485),
    (200, 1000, 1): (336, 336, 313),
    (200, 1000, 4): (1344, 336, 781),
    (200, 1000, 16): (2688, 672, 2557),
    (500, 375, 1): (336, 336, 313),
    (500, 375, 4): (672, 672, 757),
    (500, 375, 16): (1008, 1344, 1921),
}


@pytest.mark.parametrize(("width", "height", "num_crops"), list(SPEC_TABLE))
def test_spec_table_row(width: int, height: int, num_crops: int, make_image: Callable[..., Image.Image]) -> None:
    padded_h, padded_w, tokens = SPEC_TABLE[(width, height, num_crops)]
    processor = Phi3VImageProcessor(num_crops=num_crops)
    out = processor([make_image(width, height, seed=width + height)])
    assert out["pixel_values"].shape == (1, num_crops + 1, 3, 336, 336)
    assert out["pixel_values"].dtype == torch.float32
    assert out["image_sizes"].tolist() == [[padded_h, padded_w]]
    assert out["num_img_tokens"] == [tokens]
    assert processor.calc_num_image_tokens_from_image_size(width, height) == tokens
    used = (padded_h // 336) * (padded_w // 336) + 1
    assert torch.count_nonzero(out["pixel_values"][0, used:]) == 0
    assert bool((out["pixel_values"][0, :used].abs().sum(dim=(1, 2, 3)) > 0).all())


@pytest.mark.parametrize(
    ("width", "height", "num_crops"),
    [
        (336, 336, 4),
        (320, 240, 16),
        (240, 320, 16),
        (240, 320, 4),
        (1000, 200, 4),
        (200, 1000, 16),
        (199, 1001, 9),
        (1700, 2200, 16),
        (1700, 2200, 4),
        (50, 37, 4),
        (37, 50, 4),
    ],
)
def test_matches_step_by_step_reference_bit_for_bit(
    width: int, height: int, num_crops: int, make_image: Callable[..., Image.Image]
) -> None:
    image = make_image(width, height, seed=7)
    out = Phi3VImageProcessor(num_crops=num_crops)([image])
    assert torch.equal(out["pixel_values"][0], reference_pixel_values(image, num_crops))


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(1, 400),
    height=st.integers(1, 400),
    num_crops=st.sampled_from([1, 2, 4, 6, 16]),
    seed=st.integers(0, 2**16),
)
def test_matches_reference_for_any_size(width: int, height: int, num_crops: int, seed: int) -> None:
    assume(max(width, height) <= 20 * min(width, height))
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))
    assert torch.equal(
        Phi3VImageProcessor(num_crops=num_crops)([image])["pixel_values"][0], reference_pixel_values(image, num_crops)
    )


def test_portrait_is_the_transpose_of_landscape(make_image: Callable[..., Image.Image]) -> None:
    processor = Phi3VImageProcessor(num_crops=16)
    landscape = make_image(320, 240, seed=3)
    portrait = landscape.transpose(Image.Transpose.TRANSPOSE)
    out_l, out_p = processor([landscape]), processor([portrait])
    assert out_l["image_sizes"].tolist() == [[1008, 1344]]
    assert out_p["image_sizes"].tolist() == [[1344, 1008]]
    assert out_p["num_img_tokens"] == [(12 + 1) * 144 + 1 + (4 + 1) * 12]
    assert torch.equal(processor.hd_image(portrait), processor.hd_image(landscape).transpose(1, 2))


def test_white_padding_is_centred_on_the_height(make_image: Callable[..., Image.Image]) -> None:
    # 320x240 at num_crops 4: resized to 672x504, padded to 672 rows: 84 white rows on top and bottom.
    hd = Phi3VImageProcessor(num_crops=4).hd_image(make_image(320, 240, seed=1))
    white = torch.tensor([(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)])
    assert hd.shape == (3, 672, 672)
    for rows in (slice(0, 84), slice(588, 672)):
        torch.testing.assert_close(hd[:, rows], white[:, None, None].expand(3, 84, 672), rtol=0, atol=1e-6)
    assert not torch.allclose(hd[:, 84], white[:, None].expand(3, 672))
    assert not torch.allclose(hd[:, 587], white[:, None].expand(3, 672))


def test_odd_padding_puts_the_extra_row_at_the_bottom(make_image: Callable[..., Image.Image]) -> None:
    # 301x100 at num_crops 1: resized to 336x111, 225 rows of padding: top int(225/2) = 112, bottom 113.
    hd = Phi3VImageProcessor(num_crops=1).hd_image(make_image(301, 100, seed=2))
    white = torch.tensor([(1 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)])
    is_white = (hd - white[:, None, None]).abs().amax(dim=(0, 2)) < 1e-6
    assert is_white[:112].all() and not is_white[112:223].any() and is_white[223:].all()


def test_global_view_first_then_row_major_crops(make_image: Callable[..., Image.Image]) -> None:
    processor = Phi3VImageProcessor(num_crops=16)
    image = make_image(1000, 200, seed=4)  # 2 rows x 8 columns
    hd = processor.hd_image(image)
    pixel_values = processor([image])["pixel_values"][0]
    expected_global = F.interpolate(hd[None], size=(336, 336), mode="bicubic", align_corners=False)[0]
    assert torch.equal(pixel_values[0], expected_global)
    assert torch.equal(pixel_values[1], hd[:, :336, :336])
    assert torch.equal(pixel_values[2], hd[:, :336, 336:672])
    assert torch.equal(pixel_values[9], hd[:, 336:, :336])
    assert torch.equal(pixel_values[16], hd[:, 336:, -336:])
    assert torch.count_nonzero(pixel_values[17:]) == 0


def test_small_images_are_upscaled() -> None:
    processor = Phi3VImageProcessor(num_crops=4)
    tiny = Image.new("RGB", (8, 6), (255, 0, 0))
    out = processor([tiny])
    assert out["image_sizes"].tolist() == [[672, 672]]
    red = torch.tensor([(1 - CLIP_MEAN[0]) / CLIP_STD[0], -CLIP_MEAN[1] / CLIP_STD[1], -CLIP_MEAN[2] / CLIP_STD[2]])
    torch.testing.assert_close(out["pixel_values"][0, 1, :, -1, 0], red, rtol=0, atol=1e-6)


def test_batch_of_images_keeps_their_order(make_image: Callable[..., Image.Image]) -> None:
    processor = Phi3VImageProcessor(num_crops=4)
    images = [make_image(200, 1000, seed=5), make_image(336, 336, seed=6)]
    out = processor(images)
    assert out["pixel_values"].shape == (2, 5, 3, 336, 336)
    assert out["image_sizes"].tolist() == [[1344, 336], [672, 672]]
    assert out["num_img_tokens"] == [781, 757]
    assert torch.equal(out["pixel_values"][1], processor([images[1]])["pixel_values"][0])


def test_rgba_drops_alpha_without_compositing(make_image: Callable[..., Image.Image]) -> None:
    processor = Phi3VImageProcessor(num_crops=1)
    rgba = make_image(40, 30, seed=8, mode="RGBA")
    assert np.asarray(rgba)[:, :, 3].min() < 255
    plain = rgba.convert("RGB")
    on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    result = processor([rgba])["pixel_values"]
    assert torch.equal(result, processor([plain])["pixel_values"])
    assert not torch.equal(result, processor([on_white])["pixel_values"])


def test_always_converts_like_the_hub(make_image: Callable[..., Image.Image]) -> None:
    gray = make_image(40, 30, seed=10, mode="L")
    converted = Phi3VImageProcessor(num_crops=1, do_convert_rgb=False)([gray])["pixel_values"]
    assert torch.equal(converted, Phi3VImageProcessor(num_crops=1)([gray.convert("RGB")])["pixel_values"])


@pytest.mark.parametrize("mode", ["L", "P"])
def test_grayscale_and_palette_become_rgb(mode: str, make_image: Callable[..., Image.Image]) -> None:
    processor = Phi3VImageProcessor(num_crops=1)
    image = make_image(40, 30, seed=9, mode="L") if mode == "L" else make_image(40, 30, seed=9).convert("P")
    expected = reference_pixel_values(image, 1)
    assert torch.equal(processor([image])["pixel_values"][0], expected)
    if mode == "L":
        unnormalized = expected[0] * torch.tensor(CLIP_STD)[:, None, None] + torch.tensor(CLIP_MEAN)[:, None, None]
        torch.testing.assert_close(unnormalized[0], unnormalized[1], rtol=0, atol=1e-5)
        torch.testing.assert_close(unnormalized[0], unnormalized[2], rtol=0, atol=1e-5)


def test_rejects_bad_inputs(make_image: Callable[..., Image.Image]) -> None:
    with pytest.raises(TypeError, match="image 0 is a ndarray"):
        Phi3VImageProcessor()([np.zeros((10, 10, 3), dtype=np.uint8)])
    with pytest.raises(ValueError, match="too elongated"):
        Phi3VImageProcessor(num_crops=1)([Image.new("RGB", (400, 1))])
    with pytest.raises(ValueError, match="return_tensors must be 'pt' or 'np', got 'jax'"):
        Phi3VImageProcessor()([make_image(10, 10)], return_tensors="jax")
    with pytest.raises(ValueError, match="num_crops must be an integer of at least 1, got 0"):
        Phi3VImageProcessor(num_crops=0)
    with pytest.raises(ValueError, match="num_img_tokens must be 144"):
        Phi3VImageProcessor(num_img_tokens=100)


def test_empty_batch() -> None:
    out = Phi3VImageProcessor(num_crops=4)([])
    assert out["pixel_values"].shape == (0, 5, 3, 336, 336)
    assert out["image_sizes"].shape == (0, 2)
    assert out["num_img_tokens"] == []


def test_reads_the_hub_config(reference_dir: Path) -> None:
    processor = Phi3VImageProcessor.from_pretrained(reference_dir)
    assert processor.num_crops == 4
    assert processor.image_mean == list(CLIP_MEAN)
    assert processor.image_std == list(CLIP_STD)
    assert Phi3VImageProcessor.from_pretrained(reference_dir, num_crops=16).num_crops == 16


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    Phi3VImageProcessor(num_crops=16).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved == {
        "do_convert_rgb": True,
        "image_mean": list(CLIP_MEAN),
        "image_processor_type": "Phi3VImageProcessor",
        "image_std": list(CLIP_STD),
        "num_crops": 16,
        "num_img_tokens": 144,
        "processor_class": "Phi3VProcessor",
    }
    loaded = Phi3VImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == saved
    assert loaded.calc_num_image_tokens_from_image_size(336, 336) == 2509
