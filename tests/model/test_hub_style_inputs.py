"""The model takes the hub model's inputs: images without positions, list image_sizes, return_dict=False."""

import torch
from model_inputs import image_batch, prompt_ids


def test_pixel_values_without_image_positions_are_ignored(tiny_model):
    pixel_values, image_sizes = image_batch([(1, 2)], num_crops=2)
    text_only = torch.tensor([[1, 32010, 29871, 13, 3869, 32007]])
    with torch.no_grad():
        plain = tiny_model(input_ids=text_only).logits
        with_images = tiny_model(input_ids=text_only, pixel_values=pixel_values, image_sizes=image_sizes).logits
    assert torch.equal(plain, with_images)


def test_image_sizes_may_be_a_list(tiny_model):
    pixel_values, image_sizes = image_batch([(1, 2)], num_crops=2)
    input_ids = torch.tensor([prompt_ids([(1, 2)], [3869])])
    with torch.no_grad():
        from_tensor = tiny_model(input_ids=input_ids, pixel_values=pixel_values, image_sizes=image_sizes).logits
        from_list = tiny_model(input_ids=input_ids, pixel_values=pixel_values, image_sizes=image_sizes.tolist()).logits
    assert image_sizes.tolist() == [[336, 672]]
    assert torch.equal(from_tensor, from_list)


def test_return_dict_false_gives_a_tuple(tiny_model):
    input_ids = torch.tensor([[1, 32010, 29871, 13, 3869]])
    with torch.no_grad():
        output = tiny_model(input_ids=input_ids, return_dict=False)
        reference = tiny_model(input_ids=input_ids)
    assert isinstance(output, tuple)
    assert torch.equal(output[0], reference.logits)
