"""`phi3v-train --help` and `run --help` stay fast: building the app imports none of the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from typer.main import get_command
from phi3v_train.cli.main import app
get_command(app).commands["run"].get_help  # the run command and its options are built
print(sorted(name for name in ("torch", "transformers", "peft", "phi3v_train.model") if name in sys.modules))
"""


def test_building_the_cli_imports_no_torch_transformers_peft_or_model():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
