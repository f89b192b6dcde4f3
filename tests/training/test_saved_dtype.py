"""Full fine-tuning writes the final model in the training dtype; checkpoints keep the fp32 master weights."""

from __future__ import annotations

from safetensors.torch import load_file


def test_bf16_full_run_saves_bf16_weights_and_fp32_checkpoints(colour_data, tmp_path, quick_run):
    out = tmp_path / "run"
    quick_run(colour_data, out, mode="full", precision="bf16", max_steps=1, save_steps=1)
    assert {str(value.dtype) for value in load_file(out / "model.safetensors").values()} == {"torch.bfloat16"}
    checkpoint = load_file(out / "checkpoint-1" / "model.safetensors")
    assert {str(value.dtype) for value in checkpoint.values()} == {"torch.float32"}
    final = load_file(out / "model.safetensors")
    assert final.keys() == checkpoint.keys()
    assert all(final[key].equal(value.bfloat16()) for key, value in checkpoint.items())
