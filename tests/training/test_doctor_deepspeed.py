"""`phi3v-train doctor` checks what DeepSpeed's first start builds with: a C++ compiler and ninja on PATH."""

from __future__ import annotations

import pytest

from phi3v_train.training import doctor

pytest.importorskip("deepspeed", reason="deepspeed is not installed")


def test_missing_build_tools_fail_with_the_fix(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    checks = {check.name: check for check in doctor.deepspeed_build_checks()}
    assert {name: check.status for name, check in checks.items()} == {"c++ compiler": "fail", "ninja": "fail"}
    assert checks["ninja"].fix == "pip install ninja, and put the environment's bin folder on PATH"


def test_present_build_tools_are_named(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/usr/bin/{name}")
    checks = doctor.deepspeed_build_checks()
    assert [(check.name, check.status, check.detail) for check in checks] == [
        ("c++ compiler", "ok", "/usr/bin/c++"),
        ("ninja", "ok", "/usr/bin/ninja"),
    ]
