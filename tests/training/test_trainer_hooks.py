"""The Trainer methods `Phi3VTrainer` overrides: the transformers contracts they rely on, and what they save."""

from __future__ import annotations

import inspect

from safetensors import safe_open
from transformers import Trainer


def test_the_overridden_hooks_keep_their_transformers_contract():
    # `save_model` is public; checkpoints reach it only through this call in `_save_checkpoint`.
    assert list(inspect.signature(Trainer.save_model).parameters) == ["self", "output_dir", "_internal_call"]
    assert "self.save_model(output_dir, _internal_call=True)" in inspect.getsource(Trainer._save_checkpoint)
    # `_get_train_sampler` is private (no public way to pass lengths): its name, signature and caller are pinned.
    assert list(inspect.signature(Trainer._get_train_sampler).parameters) == ["self", "train_dataset"]
    assert "sampler_fn=self._get_train_sampler" in inspect.getsource(Trainer.get_train_dataloader)


def test_lora_checkpoints_and_final_model_hold_the_adapters_only(colour_data, tmp_path, quick_run):
    out = tmp_path / "run"
    quick_run(colour_data, out, mode="lora", max_steps=1, save_steps=1)
    for folder in (out / "checkpoint-1", out):
        with safe_open(str(folder / "adapter_model.safetensors"), "pt") as weights:
            keys = list(weights.keys())
        assert keys and all(".lora_A." in key or ".lora_B." in key for key in keys), folder
        assert (folder / "training_args.bin").is_file()
