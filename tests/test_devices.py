"""The accelerator path, written once for every device: on CI only the CPU runs, on a machine
with CUDA (or Apple's MPS) the same tests run there too and must give the CPU's maps."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import xai
from xai.perturbation import removal_curves

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    else [])


def test_load_model_picks_the_accelerator_when_there_is_one():
    model = xai.load_model("resnet18", pretrained=False)
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="module")
def on_cpu() -> xai.LoadedModel:
    torch.manual_seed(0)
    return xai.load_model("resnet18", pretrained=False, device="cpu")


def _moved(model: xai.LoadedModel, device: str) -> xai.LoadedModel:
    other = copy.copy(model)
    other.module = copy.deepcopy(model.module)
    return other.to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_the_gallery_is_the_same_on_every_device(on_cpu, cat_path, device):
    model = _moved(on_cpu, device)
    assert model.device.type == device and model.place(torch.zeros(1, 3, 8, 8)).device.type \
        == device
    ref = xai.explain(on_cpu, cat_path, xai.DEFAULT_METHODS, xai.DEFAULT_DEPTHS)
    got = xai.explain(model, cat_path, xai.DEFAULT_METHODS, xai.DEFAULT_DEPTHS)
    assert [p.index for p in got.predictions] == [p.index for p in ref.predictions]
    for m in xai.DEFAULT_METHODS:
        for d in xai.DEFAULT_DEPTHS:
            cam = got.cam(m, d)
            assert isinstance(cam, np.ndarray)  # maps come back to the host
            np.testing.assert_allclose(cam, ref.cam(m, d), atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_removal_curves_run_where_the_model_is(on_cpu, device):
    model = _moved(on_cpu, device)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    maps = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1))
    ref = removal_curves(on_cpu, x, maps, 3, patch=8, n_steps=4)
    got = removal_curves(model, x.to(device), maps.to(device), 3, patch=8, n_steps=4)
    assert got.forwards == ref.forwards
    np.testing.assert_allclose(got.logit["morf"], ref.logit["morf"], atol=1e-3)
