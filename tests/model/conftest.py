"""Fixtures for the model tests."""

import pytest

from phi3v_train.model.modeling import Phi3VForCausalLM
from phi3v_train.model.sizes import build_model


@pytest.fixture
def tiny_model() -> Phi3VForCausalLM:
    model = build_model("tiny", seed=0)
    model.eval()
    return model
