#!/usr/bin/env bash
# One-GPU throughput suite of issue 14 (estimated 5-7 minutes on one H100/H200; not yet run on a GPU):
# full-size random weights at the DocVQA shape, full / frozen image model / LoRA / QLoRA x sdpa /
# flash-attention 2 (when installed) x padded /
# packed, printed next to the recipe's per-GPU A100 figures. Details: benchmarks/gpu_suite.py.
#
#   bash benchmarks/gpu_suite.sh                     # GPU; JSON to $OUT/gpu_suite.json or benchmarks/gpu_suite.json
#   bash benchmarks/gpu_suite.sh --smoke --out F     # CPU check of the script itself (tiny preset)
#   bash benchmarks/gpu_suite.sh --modes lora,qlora --batch-size 8
#
# The GPU machine has torch, transformers and peft but no package registry: download the other wheels
# here (pip download --no-deps -d wheels pydantic pydantic-core typing-inspection annotated-types pyyaml
# pillow bitsandbytes, for the GPU machine's Python and platform) and install them there with
# pip install --no-index wheels/*.whl. Without bitsandbytes QLoRA is skipped; without flash-attn, sdpa only.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false PHI3V_DISABLE_PROGRESS_BARS=1

missing=$("$PYTHON" - <<'PY'
import importlib.util
needed = ["torch", "transformers", "peft", "accelerate", "safetensors", "pydantic", "yaml", "PIL"]
print(" ".join(name for name in needed if importlib.util.find_spec(name) is None))
PY
)
if [ -n "$missing" ]; then
    echo "gpu_suite: missing Python packages: $missing (bring their wheels, see the header of $0)" >&2
    exit 2
fi

args=("$@")
if [[ " ${args[*]:-} " != *" --out "* ]]; then
    args+=(--out "${OUT:-benchmarks}/gpu_suite.json")
fi
if [[ " ${args[*]:-} " != *" --smoke "* ]]; then
    "$PYTHON" -c "import torch; print('GPU:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"
fi
exec "$PYTHON" benchmarks/gpu_suite.py "${args[@]}"
