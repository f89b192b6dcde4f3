"""The shared core (errors, paths, file helpers) imports with the standard library alone."""

from __future__ import annotations

import subprocess
import sys

SNIPPET = """
import sys
for blocked in ("pydantic", "PIL", "rich", "typer", "torch"):
    sys.modules[blocked] = None
import phi3v_data.errors, phi3v_data.io, phi3v_data.paths, phi3v_train.errors
print(phi3v_data.paths.image_root_for("data/a.jsonl", None), phi3v_data.paths.image_root_for("data/a.jsonl", "imgs"))
"""


def test_errors_paths_and_io_need_no_third_party_package() -> None:
    done = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["data/images", "imgs"]
