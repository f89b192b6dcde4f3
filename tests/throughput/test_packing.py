"""Padding-free packing: rows of whole records, positions restarting per record, no attention across records,
and the loss and gradients of the unpacked batch."""

from __future__ import annotations

import pytest
import torch
from throughput_items import assert_same_gradients, loss_and_gradients, mixed_items

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.packing import pack_rows, packed_token_count, record_position_ids
from phi3v_train.model.packed_attention import PACKED_SDPA, use_packed_sdpa
from phi3v_train.model.sizes import build_model


def test_first_fit_rows_in_order():
    assert pack_rows([5, 3, 4, 2, 6], max_length=8) == [[0, 1], [2, 3], [4]]
    assert pack_rows([5, 3, 4, 2, 6], max_length=None) == [[0, 1, 2, 3, 4]]
    assert pack_rows([7, 2, 1], max_length=8) == [[0, 2], [1]]
    with pytest.raises(ValueError, match="item 1 has 9 tokens, more than the packing row length 8"):
        pack_rows([3, 9], max_length=8)


def test_positions_restart_per_record_and_pads_are_not_counted():
    assert record_position_ids([3, 2], 7).tolist() == [0, 1, 2, 0, 1, 0, 0]
    positions = torch.stack([record_position_ids([3, 2], 7), record_position_ids([7], 7)])
    assert packed_token_count(positions) == 12


def test_packed_batch_layout():
    items = mixed_items()
    lengths = [len(item["input_ids"]) for item in items]
    assert lengths == [1235, 12, 488, 12, 331]
    batch = Phi3VDataCollator(packing=True, max_length=1300)(items)
    assert pack_rows(lengths, 1300) == [[0, 1, 3], [2, 4]]
    assert batch["input_ids"].shape == (2, 1259) and "attention_mask" not in batch
    assert batch["position_ids"][0].tolist() == list(range(1235)) + list(range(12)) + list(range(12))
    assert batch["position_ids"][1, :819].tolist() == list(range(488)) + list(range(331))
    assert packed_token_count(batch["position_ids"]) == sum(lengths)
    # images follow the records in row order: two-images, then one-image and small-image
    assert batch["image_sizes"].tolist() == [[336, 672], [672, 672], [672, 336], [336, 336]]
    assert torch.equal(batch["input_ids"][0, 1235:1247], torch.tensor(items[1]["input_ids"]))
    assert (batch["labels"][1, 819:] == -100).all() and (batch["input_ids"][1, 819:] == 32000).all()
    one_row = Phi3VDataCollator(packing=True, max_length=1300, single_row=True)(items)  # flash-attention 2
    assert one_row["input_ids"].shape == (1, sum(lengths))
    assert packed_token_count(one_row["position_ids"]) == sum(lengths)


def _model(attention: str):
    """The tiny model; ``packed_sdpa``: sdpa with the per-record packed path (what `--packing` uses on sdpa)."""
    model = build_model("tiny", seed=0, attn_implementation="sdpa" if attention == "packed_sdpa" else attention)
    if attention == "packed_sdpa":
        use_packed_sdpa(model)
        assert model.config._attn_implementation == PACKED_SDPA
    return model


@pytest.mark.parametrize("attention", ["sdpa", "eager", "packed_sdpa"])
@pytest.mark.parametrize("max_length", [1300, None])
def test_packed_loss_and_gradients_equal_the_unpacked_batch(attention, max_length):
    model = _model(attention).train()
    items = mixed_items()
    padded_loss, padded_grads = loss_and_gradients(model, Phi3VDataCollator()(items))
    packed_loss, packed_grads = loss_and_gradients(model, Phi3VDataCollator(packing=True, max_length=max_length)(items))
    assert packed_loss == pytest.approx(padded_loss, abs=1e-5)
    assert_same_gradients(padded_grads, packed_grads, atol=1e-5)


@pytest.mark.parametrize("attention", ["sdpa", "packed_sdpa"])
def test_attention_never_crosses_a_record(attention):
    """Changing one record's tokens changes no other record's logits in the same packed row."""
    model = _model(attention).eval()
    items = mixed_items()
    collate = Phi3VDataCollator(packing=True, max_length=1300)
    changed = [dict(item) for item in items]
    changed[1] = dict(items[1], input_ids=[1, 32010, 29871, 13, 22172, 32007, 32001, *items[1]["input_ids"][7:]])
    with torch.no_grad():
        before = model(**collate(items), use_cache=False).logits
        after = model(**collate(changed), use_cache=False).logits
    assert torch.equal(before[0, :1235], after[0, :1235])  # the record before it
    assert not torch.allclose(before[0, 1235:1247], after[0, 1235:1247])
    assert torch.allclose(before[0, 1247:1259], after[0, 1247:1259], atol=1e-6)  # the record after it


def test_packed_sdpa_gives_the_padded_batch_the_plain_sdpa_logits():
    """Padded batches (a 2D mask) and single sequences take plain sdpa under the packed implementation."""
    items = mixed_items()[:3]
    batch = Phi3VDataCollator()(items)
    plain, packed = _model("sdpa").eval(), _model("packed_sdpa").eval()
    with torch.no_grad():
        assert torch.equal(plain(**batch, use_cache=False).logits, packed(**batch, use_cache=False).logits)
        alone = {"input_ids": torch.tensor([items[1]["input_ids"]])}  # the text-only record, no mask
        assert torch.equal(plain(**alone, use_cache=False).logits, packed(**alone, use_cache=False).logits)
