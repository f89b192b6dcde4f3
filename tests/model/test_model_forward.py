"""Forward/backward, gradient checkpointing, generation with the KV cache, attention backends, batching."""

import pytest
import torch
from model_inputs import image_batch, prompt_ids, right_pad
from peft import LoraConfig, get_peft_model
from transformers import DynamicCache

from phi3v_train.errors import ImageTokenMismatchError
from phi3v_train.model.sizes import build_model

ANSWER = [3869, 32007, 29871, 13, 32000]


def _training_inputs(grids=((1, 2),), num_crops=2):
    pixel_values, image_sizes = image_batch(list(grids), num_crops=num_crops)
    ids = prompt_ids(list(grids), ANSWER)
    labels = [-100] * (len(ids) - len(ANSWER)) + ANSWER
    return {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "pixel_values": pixel_values,
        "image_sizes": image_sizes,
    }


def _grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_loss_is_the_shifted_cross_entropy_over_answer_tokens(tiny_model):
    inputs = _training_inputs()
    out = tiny_model(**inputs)
    logits = out.logits[0, -len(ANSWER) - 1 : -1]
    expected = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(ANSWER))
    assert torch.isfinite(out.loss)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_backward_reaches_every_parameter(tiny_model):
    """Every parameter gets a gradient: nothing unused that DDP would trip over (CLIP's last layer and
    post-norm are not built)."""
    tiny_model.train()
    tiny_model(**_training_inputs()).loss.backward()
    grads = _grads(tiny_model)
    names = {name for name, _ in tiny_model.named_parameters()}
    assert set(grads) == names
    for name in (
        "lm_head.weight",
        "model.layers.1.self_attn.qkv_proj.weight",
        "model.layers.0.mlp.gate_up_proj.weight",
        "model.vision_embed_tokens.img_projection.0.weight",
        "model.vision_embed_tokens.glb_GN",
        "model.vision_embed_tokens.sub_GN",
        "model.vision_embed_tokens.img_processor.vision_model.encoder.layers.1.mlp.fc2.weight",
        "model.vision_embed_tokens.img_processor.vision_model.embeddings.patch_embedding.weight",
    ):
        assert grads[name].abs().sum() > 0, name
    assert not any("post_layernorm" in name or "layers.2." in name for name in names)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    inputs = _training_inputs()
    results = []
    for checkpointing in (False, True):
        model = build_model("tiny", seed=0)
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable()  # non-reentrant by default, as the Trainer calls it
            assert model.model.layers[0].gradient_checkpointing
            assert model.model.vision_embed_tokens.img_processor.vision_model.encoder.layers[0].gradient_checkpointing
        loss = model(**inputs).loss
        loss.backward()
        results.append((loss.detach(), _grads(model)))
    (loss_plain, grads_plain), (loss_ckpt, grads_ckpt) = results
    assert torch.equal(loss_plain, loss_ckpt)
    assert grads_plain.keys() == grads_ckpt.keys()
    for name, grad in grads_plain.items():
        assert torch.allclose(grad, grads_ckpt[name], atol=1e-6, rtol=1e-5), name


def test_greedy_generation_with_and_without_cache_is_identical(tiny_model):
    grids = [(1, 1)]
    pixel_values, image_sizes = image_batch(grids, num_crops=1)
    ids = torch.tensor([prompt_ids(grids)])
    kwargs = {"pixel_values": pixel_values, "image_sizes": image_sizes, "max_new_tokens": 6, "do_sample": False}
    cached = tiny_model.generate(input_ids=ids, use_cache=True, **kwargs)
    uncached = tiny_model.generate(input_ids=ids, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, : ids.shape[1]], ids)
    with torch.no_grad():
        first = tiny_model(input_ids=ids, pixel_values=pixel_values, image_sizes=image_sizes).logits[0, -1].argmax()
    assert cached[0, ids.shape[1]] == first


def test_cached_decoding_steps_do_not_get_the_images_again(tiny_model):
    pixel_values, image_sizes = image_batch([(1, 1)], num_crops=1)
    step = tiny_model.prepare_inputs_for_generation(
        torch.tensor([[5, 6]]), pixel_values=pixel_values, image_sizes=image_sizes, use_cache=False
    )
    assert step["pixel_values"] is None and step["image_sizes"] is None
    prefill = tiny_model.prepare_inputs_for_generation(
        torch.tensor([[1, -1, -1]]), pixel_values=pixel_values, image_sizes=image_sizes, use_cache=False
    )
    assert prefill["pixel_values"] is pixel_values and prefill["image_sizes"] is image_sizes


def test_recompute_past_4096_positions_brings_the_images_back(tiny_model):
    """Like Phi3ForCausalLM, the whole sequence is recomputed (long rope factors) when it outgrows 4096
    positions; that forward sees the image ids again, so it must get the pixels again."""
    pixel_values, image_sizes = image_batch([(1, 1)], num_crops=1)
    ids = torch.tensor([[1, -1] + [5] * 4095])
    cache = DynamicCache(config=tiny_model.config)
    kwargs = {"cache": cache, "pixel_values": pixel_values, "image_sizes": image_sizes, "next_sequence_length": 1}
    recompute = tiny_model.prepare_inputs_for_generation(ids, **kwargs)
    assert recompute["input_ids"].shape == (1, 4097)
    assert recompute.get("cache") is None
    assert recompute["pixel_values"] is pixel_values
    short = tiny_model.prepare_inputs_for_generation(ids[:, :100], **kwargs)
    assert short["input_ids"].tolist() == [[5]]
    assert short["cache"] is cache and short["pixel_values"] is None


def test_sdpa_and_eager_logits_agree():
    inputs = _training_inputs()
    logits = {}
    for attention in ("sdpa", "eager"):
        model = build_model("tiny", seed=0, attn_implementation=attention).eval()
        assert model.config.vision_config._attn_implementation == attention
        with torch.no_grad():
            logits[attention] = model(**inputs).logits
    assert torch.allclose(logits["sdpa"], logits["eager"], atol=1e-5, rtol=1e-4)


def test_batch_with_mixed_image_counts_and_a_text_only_row(tiny_model):
    """Right-padded batch: two images, one image, no image. Each row's logits equal the row run alone."""
    row_grids = [[(1, 2), (1, 1)], [(2, 1)], []]
    all_grids = [grid for grids in row_grids for grid in grids]
    pixel_values, image_sizes = image_batch(all_grids, num_crops=2, seed=5)
    rows = [prompt_ids(grids, ANSWER) if grids else [1, 32010, 29871, 13, 15043, 32007, 32001] for grids in row_grids]
    ids, mask = right_pad(rows)
    with torch.no_grad():
        batched = tiny_model(input_ids=ids, attention_mask=mask, pixel_values=pixel_values, image_sizes=image_sizes)
        first_image = 0
        for i, grids in enumerate(row_grids):
            images = slice(first_image, first_image + len(grids))
            first_image += len(grids)
            alone = tiny_model(
                input_ids=torch.tensor([rows[i]]),
                pixel_values=pixel_values[images] if grids else None,
                image_sizes=image_sizes[images] if grids else None,
            ).logits[0]
            assert torch.allclose(batched.logits[i, : len(rows[i])], alone, atol=1e-5, rtol=1e-4), f"row {i}"


def test_image_position_count_mismatch_names_both_counts(tiny_model):
    pixel_values, image_sizes = image_batch([(1, 1)], num_crops=1)
    ids = prompt_ids([(1, 1)])
    ids.remove(-1)
    with pytest.raises(ImageTokenMismatchError, match=r"mark 312 image positions .* give 313 image features"):
        tiny_model(input_ids=torch.tensor([ids]), pixel_values=pixel_values, image_sizes=image_sizes)
    with pytest.raises(ImageTokenMismatchError, match="mark 313 image positions but no pixel_values"):
        tiny_model(input_ids=torch.tensor([prompt_ids([(1, 1)])]))


def test_image_sizes_must_fit_the_crops_given(tiny_model):
    pixel_values, _ = image_batch([(1, 1)], num_crops=1)
    with pytest.raises(ImageTokenMismatchError, match="needs 5 crops, pixel_values holds 2"):
        tiny_model(
            input_ids=torch.tensor([prompt_ids([(2, 2)])]),
            pixel_values=pixel_values,
            image_sizes=torch.tensor([[672, 672]]),
        )


def test_lora_on_the_documented_module_names(tiny_model):
    targets = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj", "q_proj", "k_proj", "v_proj", "out_proj"]
    targets += ["fc1", "fc2", "img_projection.0", "img_projection.2"]
    model = get_peft_model(tiny_model, LoraConfig(r=4, target_modules=targets, init_lora_weights=False))
    wrapped = {
        name.split(".base_layer")[0].rsplit(".", 1)[-1] for name, _ in model.named_modules() if "base_layer" in name
    }
    assert {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "q_proj", "fc1", "0", "2"} <= wrapped
    model.train()
    model(**_training_inputs()).loss.backward()
    lora_grads = [p.grad for name, p in model.named_parameters() if "lora_" in name]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)


def test_left_padded_batch_generation_matches_each_prompt_alone(tiny_model):
    image_row, text_row = prompt_ids([(1, 1)]), [1, 32010, 29871, 13, 15043, 32007, 32001]
    pixel_values, image_sizes = image_batch([(1, 1)], num_crops=1)
    width = len(image_row)
    ids = torch.full((2, width), 32000)
    mask = torch.zeros((2, width), dtype=torch.long)
    for i, row in enumerate((image_row, text_row)):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    greedy = {"max_new_tokens": 5, "do_sample": False}
    batched = tiny_model.generate(
        input_ids=ids, attention_mask=mask, pixel_values=pixel_values, image_sizes=image_sizes, **greedy
    )
    alone_image = tiny_model.generate(
        input_ids=torch.tensor([image_row]), pixel_values=pixel_values, image_sizes=image_sizes, **greedy
    )
    alone_text = tiny_model.generate(input_ids=torch.tensor([text_row]), **greedy)
    assert torch.equal(batched[0, width:], alone_image[0, len(image_row) :])
    assert torch.equal(batched[1, width:], alone_text[0, len(text_row) :])
