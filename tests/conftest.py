"""Shared fixtures. Tests run offline: only the bundled model has real weights."""

from __future__ import annotations

import os
import shutil
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


# --- the browser tests (test_browser*.py): Debian's Chromium driven by Playwright -------------

CHROMIUM = os.environ.get("XAI_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright for Python is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium); the browser "
                    "test needs Debian's package because a browser download is not possible")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = Path(os.environ.get("XAI_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screens"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def random_weight_models():
    """DenseNet121 and Inception v3 with random weights (no download), registered by name."""
    import timm

    import xai

    names = {"densenet121": (224, 224), "inception_v3": (299, 299)}
    for name, size in names.items():
        xai.register_model(name, lambda pretrained, n=name: timm.create_model(
            n, pretrained=False), input_size=size)
    yield list(names)
    for name in names:
        xai.unregister_model(name)
