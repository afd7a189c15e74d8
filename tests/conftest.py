"""Shared fixtures. Tests run offline: only the bundled model has real weights."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

import xai  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
torch.manual_seed(0)


@pytest.fixture(scope="session")
def bundled() -> xai.LoadedModel:
    """The offline default with real ImageNet weights."""
    return xai.load_model()


_CACHE: dict[str, xai.LoadedModel] = {}


def random_model(name: str) -> xai.LoadedModel:
    """A model with random weights (no download), cached for the session."""
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = xai.load_model(name, pretrained=False, device="cpu")
    return _CACHE[name]


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two shared cores: one torch thread per computation (two spin against each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cat_path() -> Path:
    return EXAMPLES / "cat.png"


@pytest.fixture(scope="session")
def coffee_path() -> Path:
    return EXAMPLES / "coffee.png"
