"""Overlays and the gallery grid."""

from __future__ import annotations

import numpy as np
import pytest

import xai
from xai.render import PANEL, colorize, gallery, overlay, panels


def test_overlay_alpha_blends_the_heat_map():
    image = np.full((4, 6, 3), 100, np.uint8)
    cam = np.zeros((4, 6), np.float32)
    cam[0, 0] = 1.0
    assert np.array_equal(overlay(image, cam, alpha=0.0), image)
    assert np.array_equal(overlay(image, cam, alpha=1.0), colorize(cam))
    half = overlay(image, cam, alpha=0.5).astype(int)
    assert np.abs(half - (image.astype(int) + colorize(cam).astype(int)) / 2).max() <= 1
    with pytest.raises(ValueError):
        overlay(image, cam[:2], 0.5)
    with pytest.raises(ValueError):
        overlay(image, cam, 1.5)


def test_gallery_has_a_block_per_target_and_a_cell_per_map(bundled, cat_path):
    r = xai.explain(bundled, cat_path, top_k=2)
    pics = panels(r, r.targets[1].index)
    assert len(pics) == 12
    assert [(m, d) for _, m, d, _ in pics][:4] == [
        ("gradcam", "first"), ("gradcam++", "first"), ("eigencam", "first"),
        ("xgradcam", "first")]
    assert all(p.shape == r.image.shape for p, *_ in pics)
    assert "Grad-CAM++ · first · blocks.0 · 16×112×112" == pics[1][3]
    one = gallery(xai.explain(bundled, cat_path))
    two = gallery(r)
    assert one.width == two.width >= 5 * PANEL
    assert two.height - one.height >= 3 * PANEL  # a second block of three rows


def test_the_labelled_sheet_carries_the_colour_bar_of_its_colormap(bundled, cat_path):
    from xai.render import PAD

    result = xai.explain(bundled, cat_path, ["gradcam"], ["last"])
    for colormap in ("jet", "viridis"):
        sheet = np.asarray(gallery(result, colormap=colormap))
        right = sheet.shape[1] - PAD - 1  # the bar's last column, 8 px down
        low, high = colorize(np.array([0.0, 1.0], np.float32), colormap)
        assert np.abs(sheet[14, right].astype(int) - high).max() <= 8
        assert np.abs(sheet[14, right - 219].astype(int) - low).max() <= 8
