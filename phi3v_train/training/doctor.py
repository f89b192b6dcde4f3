"""`phi3v-train doctor`: is this machine ready to train? Each check says what is wrong and the fix."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import phi3v_train

CONSTRAINTS_FILE = "constraints.txt"
REQUIRED = ("torch", "transformers", "tokenizers", "safetensors", "accelerate", "peft", "pydantic", "PyYAML")
PIN_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""


def constraints_path() -> Path | None:
    """constraints.txt beside the package source (an editable or source install); None when absent."""
    candidate = Path(phi3v_train.__file__).resolve().parent.parent / CONSTRAINTS_FILE
    return candidate if candidate.is_file() else None


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN_RE.match(line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_checks(pins: dict[str, str] | None) -> list[Check]:
    """Installed versions against the tested pins (the local part, e.g. +cu121, is ignored)."""
    if pins is None:
        return [
            Check(
                "versions",
                "warn",
                f"{CONSTRAINTS_FILE} not found next to the package (installed from a wheel?); versions not compared",
                "Install from the source tree: pip install -c constraints.txt -e '.[train]'",
            )
        ]
    checks = []
    for name, pinned in pins.items():
        found = _installed(name)
        required = name in REQUIRED
        if found is None:
            status = "fail" if required else "warn"
            checks.append(Check(name, status, f"not installed (tested: {pinned})", f"pip install '{name}=={pinned}'"))
        elif found.split("+")[0] != pinned.split("+")[0]:
            fix = f"pip install -c {CONSTRAINTS_FILE} '{name}=={pinned}'"
            checks.append(Check(name, "warn", f"{found} installed, tested with {pinned}", fix))
        else:
            checks.append(Check(name, "ok", found))
    return checks


def hardware_checks() -> list[Check]:
    import torch

    checks = []
    if not torch.cuda.is_available():
        checks.append(
            Check(
                "cuda",
                "warn",
                "no CUDA device: CPU only (fine for the tiny model and tests)",
                "Install the CUDA build of torch on a GPU node: pip install torch --index-url "
                "https://download.pytorch.org/whl/cu121",
            )
        )
        return checks
    name = torch.cuda.get_device_name(0)
    checks.append(Check("cuda", "ok", f"{torch.cuda.device_count()} x {name}, CUDA {torch.version.cuda}"))
    if torch.cuda.is_bf16_supported():
        checks.append(Check("bf16", "ok", "supported"))
    else:
        checks.append(Check("bf16", "warn", f"{name} has no bf16", "Train with --precision fp16 (and --attn sdpa)"))
    if importlib.util.find_spec("flash_attn") is None:
        checks.append(
            Check("flash-attn", "warn", "not installed; sdpa is used", "pip install flash-attn --no-build-isolation")
        )
    else:
        checks.append(Check("flash-attn", "ok", _installed("flash-attn") or "installed"))
    return checks


OPTIONAL = {
    "bitsandbytes": ("--mode qlora", "pip install 'phi3v[qlora]'"),
    "deepspeed": ("--deepspeed", "pip install 'phi3v[deepspeed]'"),
}


def optional_checks(already_checked: set[str]) -> list[Check]:
    """The optional packages that the version checks did not cover."""
    checks = []
    for name, (feature, fix) in OPTIONAL.items():
        if name in already_checked:
            continue
        if importlib.util.find_spec(name) is None:
            checks.append(Check(name, "warn", f"not installed: {feature} unavailable", fix))
        else:
            checks.append(Check(name, "ok", _installed(name) or "installed"))
    return checks


def deepspeed_build_checks() -> list[Check]:
    """DeepSpeed JIT-builds a communication op the first time it starts (even on CPU): it needs ninja on PATH
    and a C++ compiler. Nothing to check without deepspeed."""
    if importlib.util.find_spec("deepspeed") is None:
        return []
    checks = []
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        checks.append(Check("c++ compiler", "fail", "none on PATH: --deepspeed cannot build its ops",
                            "install g++ (apt-get install g++)"))  # fmt: skip
    else:
        checks.append(Check("c++ compiler", "ok", compiler))
    ninja = shutil.which("ninja")
    if ninja is None:
        checks.append(Check("ninja", "fail", "not on PATH: --deepspeed cannot build its ops",
                            "pip install ninja, and put the environment's bin folder on PATH"))  # fmt: skip
    else:
        checks.append(Check("ninja", "ok", ninja))
    return checks


def smoke_train() -> Check:
    """Two LoRA steps of the tiny preset on one image record and one text record."""
    from PIL import Image

    from phi3v_train.training.config import load_config
    from phi3v_train.training.trainer import train

    with tempfile.TemporaryDirectory(prefix="phi3v-doctor-") as folder:
        root = Path(folder)
        (root / "images").mkdir()
        Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "images" / "a.png")
        records = [
            {
                "id": "a",
                "source": "doctor",
                "conversations": [{"images": ["a.png"], "user": "Colour?", "assistant": "Red"}],
            },
            {"id": "b", "source": "doctor", "conversations": [{"user": "Say hi.", "assistant": "Hi"}]},
        ]
        data = root / "train.jsonl"
        data.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
        values = {"model": "tiny", "mode": "lora", "train_files": [data], "output_dir": root / "run", "num_crops": 1,
                  "max_steps": 2, "logging_steps": 1, "report_to": [], "workers": 0}  # fmt: skip
        try:
            result = train(load_config(None, values))
        except Exception as exc:  # the point of the check is to report any failure as a finding
            return Check("smoke train", "fail", f"{type(exc).__name__}: {exc}", "Fix the failing package above first")
    losses = [loss for _, loss in result.losses]
    if len(losses) != 2 or not all(math.isfinite(loss) for loss in losses):
        return Check("smoke train", "fail", f"losses {losses}", "Reinstall the pinned stack (constraints.txt)")
    return Check(
        "smoke train", "ok", f"2 LoRA steps of the tiny preset, losses {', '.join(f'{x:.3f}' for x in losses)}"
    )


def run_checks(smoke: bool = True) -> list[Check]:
    path = constraints_path()
    checks = version_checks(read_pins(path) if path else None)
    checks += hardware_checks() + optional_checks({check.name for check in checks}) + deepspeed_build_checks()
    if smoke:
        checks.append(smoke_train())
    return checks
