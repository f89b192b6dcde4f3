"""Loss only where labels are: same loss and gradients as transformers' loss over the full logits."""

from __future__ import annotations

import pytest
import torch
from throughput_items import assert_same_gradients, gradients, loss_and_gradients, mixed_items
from transformers.loss.loss_utils import ForCausalLMLoss

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.model.sizes import build_model


@pytest.fixture
def model():
    return build_model("tiny", seed=0).train()


def _full_logits_loss_and_gradients(model, batch, num_items_in_batch):
    model.zero_grad(set_to_none=True)
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    logits = model(**inputs, use_cache=False).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    loss = ForCausalLMLoss(logits, batch["labels"], model.config.vocab_size, num_items_in_batch=num_items_in_batch)
    loss.backward()
    return loss.item(), gradients(model)


@pytest.mark.parametrize("num_items_in_batch", [None, 40])
def test_labelled_positions_loss_equals_the_full_logits_loss(model, num_items_in_batch):
    batch = Phi3VDataCollator()(mixed_items())
    supervised = int((batch["labels"][:, 1:] != -100).sum())
    assert supervised == 22  # 5 + 5 + 4 + 5 + 3 answer tokens
    expected_loss, expected_grads = _full_logits_loss_and_gradients(model, batch, num_items_in_batch)
    extra = {} if num_items_in_batch is None else {"num_items_in_batch": torch.tensor(num_items_in_batch)}
    model.zero_grad(set_to_none=True)
    output = model(**batch, use_cache=False, **extra)
    assert output.logits is None  # training with labels: no [tokens x vocab] logits
    output.loss.backward()
    assert output.loss.item() == pytest.approx(expected_loss, rel=1e-6, abs=1e-6)
    assert_same_gradients(expected_grads, gradients(model), atol=1e-5)
    assert len(expected_grads) == len(list(model.parameters()))


def test_eval_mode_keeps_the_full_logits_and_the_same_loss(model):
    batch = Phi3VDataCollator()(mixed_items()[:2])
    training_loss, _ = loss_and_gradients(model, batch)
    model.eval()
    with torch.no_grad():
        output = model(**batch, use_cache=False)
        reference = ForCausalLMLoss(output.logits, batch["labels"], model.config.vocab_size)
    assert output.logits.shape == (*batch["input_ids"].shape, model.config.vocab_size)
    assert output.loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert output.loss.item() == pytest.approx(training_loss, rel=1e-6)
