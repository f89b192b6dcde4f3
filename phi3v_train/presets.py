"""Named model configurations: the two hub checkpoints' numbers, and ``tiny`` for tests and CPU demos.

The full-size presets hold the numbers of the hub ``config.json`` files (rope factors included), so a
randomly initialised model of the real size can be built without downloading anything. To load the
real weights, use ``Phi3VForCausalLM.from_pretrained("microsoft/Phi-3.5-vision-instruct")`` instead.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from phi3v_train.configuration import Phi3VConfig
from phi3v_train.errors import ModelConfigError
from phi3v_train.modeling import Phi3VForCausalLM

PHI35_SHORT_FACTOR: tuple[float, ...] = (
    1.08,
    1.1,
    1.1300000000000001,
    1.2800000000000002,
    1.3100000000000003,
    1.4500000000000004,
    1.4500000000000004,
    1.9500000000000008,
    2.030000000000001,
    2.4299999999999926,
    2.5699999999999896,
    2.9499999999999815,
    3.729999999999965,
    3.869999999999962,
    4.189999999999955,
    4.43999999999995,
    4.6399999999999455,
    4.979999999999938,
    5.159999999999934,
    5.279999999999932,
    5.759999999999922,
    5.889999999999919,
    5.889999999999919,
    5.969999999999917,
    6.089999999999915,
    6.2799999999999105,
    6.7699999999999,
    6.8899999999998975,
    7.109999999999893,
    7.129999999999892,
    7.179999999999891,
    7.289999999999889,
    7.339999999999888,
    7.559999999999883,
    7.619999999999882,
    7.69999999999988,
    7.879999999999876,
    7.879999999999876,
    7.879999999999876,
    7.939999999999875,
    7.949999999999875,
    7.979999999999874,
    8.19999999999987,
    8.439999999999864,
    8.469999999999864,
    8.589999999999861,
    8.809999999999857,
    8.999999999999853,
)

PHI35_LONG_FACTOR: tuple[float, ...] = (
    1.0800000429153442,
    1.1100000143051147,
    1.1399999856948853,
    1.340000033378601,
    1.5899999141693115,
    1.600000023841858,
    1.6200000047683716,
    2.620000123977661,
    3.2300000190734863,
    3.2300000190734863,
    4.789999961853027,
    7.400000095367432,
    7.700000286102295,
    9.09000015258789,
    12.199999809265137,
    17.670000076293945,
    24.46000099182129,
    28.57000160217285,
    30.420001983642578,
    30.840002059936523,
    32.590003967285156,
    32.93000411987305,
    42.320003509521484,
    44.96000289916992,
    50.340003967285156,
    50.45000457763672,
    57.55000305175781,
    57.93000411987305,
    58.21000289916992,
    60.1400032043457,
    62.61000442504883,
    62.62000274658203,
    62.71000289916992,
    63.1400032043457,
    63.1400032043457,
    63.77000427246094,
    63.93000411987305,
    63.96000289916992,
    63.970001220703125,
    64.02999877929688,
    64.06999969482422,
    64.08000183105469,
    64.12000274658203,
    64.41000366210938,
    64.4800033569336,
    64.51000213623047,
    64.52999877929688,
    64.83999633789062,
)

PHI3_128K_SHORT_FACTOR: tuple[float, ...] = (
    1.05,
    1.05,
    1.05,
    1.1,
    1.1,
    1.1,
    1.2500000000000002,
    1.2500000000000002,
    1.4000000000000004,
    1.4500000000000004,
    1.5500000000000005,
    1.8500000000000008,
    1.9000000000000008,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.000000000000001,
    2.1000000000000005,
    2.1000000000000005,
    2.2,
    2.3499999999999996,
    2.3499999999999996,
    2.3499999999999996,
    2.3499999999999996,
    2.3999999999999995,
    2.3999999999999995,
    2.6499999999999986,
    2.6999999999999984,
    2.8999999999999977,
    2.9499999999999975,
    3.049999999999997,
    3.049999999999997,
    3.049999999999997,
)

PHI3_128K_LONG_FACTOR: tuple[float, ...] = (
    1.0299999713897705,
    1.0499999523162842,
    1.0499999523162842,
    1.0799999237060547,
    1.2299998998641968,
    1.2299998998641968,
    1.2999999523162842,
    1.4499999284744263,
    1.5999999046325684,
    1.6499998569488525,
    1.8999998569488525,
    2.859999895095825,
    3.68999981880188,
    5.419999599456787,
    5.489999771118164,
    5.489999771118164,
    9.09000015258789,
    11.579999923706055,
    15.65999984741211,
    15.769999504089355,
    15.789999961853027,
    18.360000610351562,
    21.989999771118164,
    23.079999923706055,
    30.009998321533203,
    32.35000228881836,
    32.590003967285156,
    35.56000518798828,
    39.95000457763672,
    53.840003967285156,
    56.20000457763672,
    57.95000457763672,
    59.29000473022461,
    59.77000427246094,
    59.920005798339844,
    61.190006256103516,
    61.96000671386719,
    62.50000762939453,
    63.3700065612793,
    63.48000717163086,
    63.48000717163086,
    63.66000747680664,
    63.850006103515625,
    64.08000946044922,
    64.760009765625,
    64.80001068115234,
    64.81001281738281,
    64.81001281738281,
)


def _hub_config(short_factor: tuple[float, ...], long_factor: tuple[float, ...], sliding_window: int) -> dict[str, Any]:
    return {
        "vocab_size": 32064,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "su", "short_factor": list(short_factor), "long_factor": list(long_factor)},
        "sliding_window": sliding_window,
        "embd_pdrop": 0.0,
        "resid_pdrop": 0.0,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 32000,
        "embd_layer": {
            "embedding_cls": "image",
            "hd_transform_order": "sub_glb",
            "projection_cls": "mlp",
            "use_hd_transform": True,
            "with_learnable_separator": True,
        },
        "img_processor": {
            "image_dim_out": 1024,
            "model_name": "openai/clip-vit-large-patch14-336",
            "name": "clip_vision_model",
            "num_img_tokens": 144,
        },
    }


def _tiny_config() -> dict[str, Any]:
    """The real vocabulary (so the real special-token ids work) around a 2-layer, 64-wide decoder and a
    3-layer, 32-wide CLIP that still sees 336-px crops as 24x24 patches of 14 px."""
    config = _hub_config(PHI35_SHORT_FACTOR[::6], PHI35_LONG_FACTOR[::6], sliding_window=262144)
    config.update(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "projection_dim": 32,
        },
    )
    config["img_processor"] = {**config["img_processor"], "image_dim_out": 32, "model_name": "tiny"}
    return config


_PRESETS = {
    "phi-3.5-vision-instruct": lambda: _hub_config(PHI35_SHORT_FACTOR, PHI35_LONG_FACTOR, sliding_window=262144),
    "phi-3-vision-128k-instruct": lambda: _hub_config(PHI3_128K_SHORT_FACTOR, PHI3_128K_LONG_FACTOR, 131072),
    "tiny": _tiny_config,
}
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def preset_config(name: str) -> Phi3VConfig:
    """The ``Phi3VConfig`` of a named preset (see ``PRESET_NAMES``)."""
    if name not in _PRESETS:
        raise ModelConfigError(f"unknown model preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    return Phi3VConfig(**_PRESETS[name]())


def build_model(
    name: str,
    *,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> Phi3VForCausalLM:
    """A randomly initialised model of a preset; the same ``seed`` gives the same weights.

    ``device`` builds it in place (e.g. ``"cuda"``, or ``"meta"`` to count parameters without memory).
    """
    config = preset_config(name)
    placement = torch.device(device) if device is not None else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), placement:
        torch.manual_seed(seed)
        return Phi3VForCausalLM._from_config(config, dtype=dtype, attn_implementation=attn_implementation)


__all__ = ["PRESET_NAMES", "build_model", "preset_config"]
