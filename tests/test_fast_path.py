"""The fast paths change no map: NHWC convs on models the library builds, big uploads."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import xai


def _conv_weights_nhwc(module: torch.nn.Module) -> bool:
    conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    return conv.weight.is_contiguous(memory_format=torch.channels_last) and not \
        conv.weight.is_contiguous()


def test_library_built_models_run_channels_last_with_equal_maps(cat_path, one_torch_thread):
    model = xai.load_model("resnet18", pretrained=False, device="cpu")
    assert model.channels_last and _conv_weights_nhwc(model.module)
    nchw = xai.wrap_model(copy.deepcopy(model.module).to(memory_format=torch.contiguous_format),
                          "nchw", preprocessing=model.preprocessing)
    assert not nchw.channels_last and not _conv_weights_nhwc(nchw.module)
    fast, ref = xai.explain(model, cat_path), xai.explain(nchw, cat_path)
    assert fast.targets[0].index == ref.targets[0].index
    for m in fast.methods:
        for d in fast.depths:
            assert np.abs(fast.cam(m, d) - ref.cam(m, d)).max() <= 1e-5, (m, d)


def test_user_and_bundled_modules_keep_their_layout(bundled):
    assert not bundled.channels_last and not _conv_weights_nhwc(bundled.module)
    mine = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 3))
    wrapped = xai.wrap_model(mine, "mine", labels=["a", "b", "c"], input_size=(32, 32))
    xai.explain(wrapped, np.zeros((40, 40, 3), np.uint8), methods=["gradcam"])
    assert not wrapped.channels_last and not _conv_weights_nhwc(mine)


def test_a_big_jpeg_is_decoded_once_at_a_reduced_scale(bundled, cat_path, tmp_path):
    from PIL import Image

    big = tmp_path / "big.jpg"
    Image.open(cat_path).convert("RGB").resize((4000, 3000)).save(big, quality=92)
    fast = xai.prepare(big, bundled.preprocessing, "crop", display_size=512)
    full = xai.prepare(big, bundled.preprocessing, "crop")
    assert full.region.size[0] > 2500 and 585 <= min(fast.region.size) < 1000
    assert all(abs(a - b) <= 4 for a, b in zip(fast.box, full.box)), (fast.box, full.box)
    # the model sees the same picture: inputs within JPEG's DCT-scaling noise
    assert float((fast.tensor - full.tensor).abs().mean()) < 0.02
    r = xai.explain(bundled, big)
    assert r.box == fast.box and max(r.image.shape[:2]) == 512
    top = xai.predict(bundled, big, k=1)[0]
    assert top.index == r.predictions[0].index
    assert top.probability == pytest.approx(r.predictions[0].probability, abs=1e-5)
    # PNG and small JPEGs are decoded as they are
    png = xai.prepare(cat_path, bundled.preprocessing, "crop", display_size=512)
    assert png.box == xai.prepare(cat_path, bundled.preprocessing, "crop").box
