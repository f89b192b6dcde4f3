"""The model side must import on a GPU node that has torch and transformers but not the data-side packages."""

from __future__ import annotations

import subprocess
import sys

SNIPPET = """
import sys
for blocked in ("pydantic", "typer", "rich"):
    sys.modules[blocked] = None
import phi3v_train.model.image_processing, phi3v_train.model.modeling
import phi3v_train.model.processing, phi3v_train.model.sizes
print(sorted(name for name in ("pydantic", "typer", "rich") if sys.modules.get(name) is not None))
"""


def test_model_and_processor_import_without_pydantic_typer_rich() -> None:
    done = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
