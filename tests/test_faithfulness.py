"""Deletion/insertion AUC on cases where the answer is known, and the panel table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import xai
from xai.faithfulness import (
    auc,
    gaussian_blur,
    perturbation_curves,
    random_map,
    road_scores,
    score_explanation,
    sobel_map,
)

SIZE = 32


class LeftHalfModel(nn.Module):
    """Class 0's logit is the correlation of channel 0 with a checkerboard on the left half
    only; class 1 is a constant. Blur or mean-filling of left pixels lowers p(class 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(8.0))
        self.register_buffer("pattern", _checkerboard())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        s = (x[:, 0, :, :half] * self.pattern[:, :half]).mean(dim=(1, 2))
        return torch.stack([self.scale * s, torch.full_like(s, 4.0)], dim=1)


def _checkerboard() -> torch.Tensor:
    i = torch.arange(SIZE)
    return ((i[:, None] + i[None, :]) % 2 * 2 - 1).float()


@pytest.fixture(scope="module")
def toy() -> tuple[xai.LoadedModel, torch.Tensor, torch.Tensor]:
    model = xai.LoadedModel("left-half", LeftHalfModel().eval(), ["left", "other"], (SIZE, SIZE))
    x = torch.zeros(1, 3, SIZE, SIZE)
    x[0, 0] = _checkerboard()
    left = torch.zeros(SIZE, SIZE)
    left[:, : SIZE // 2] = 1.0
    maps = torch.stack([left, 1 - left, random_map((SIZE, SIZE), seed=3)])
    return model, x, maps


def test_auc_is_the_trapezoid_over_the_fraction():
    f = np.linspace(0, 1, 11)
    assert auc(np.ones(11), f) == pytest.approx(1.0)
    assert auc(1 - f, f) == pytest.approx(0.5)
    assert auc(np.stack([f, f**2]), f) == pytest.approx([0.5, 0.335], abs=1e-9)


def test_the_object_map_beats_its_inverse_and_random_lies_between(toy):
    model, x, maps = toy
    c = perturbation_curves(model, x, maps, 0, n_steps=16, chunk_size=20)
    d, i = c.deletion_auc, c.insertion_auc
    assert d[0] < d[2] < d[1]  # deletion: lower is better
    assert i[0] > i[2] > i[1]  # insertion: higher is better
    # the end points are the protocol's: the image, the all-mean image, the blurred image
    p_full = torch.sigmoid(torch.tensor(4.0)).item()
    assert c.deletion[:, 0] == pytest.approx([p_full] * 3, abs=1e-5)
    assert c.insertion[:, -1] == pytest.approx([p_full] * 3, abs=1e-5)
    assert c.deletion[:, -1] == pytest.approx([0.5 * 0 + torch.sigmoid(torch.tensor(-4.0)).item()]
                                              * 3, abs=1e-5)
    # the left map removes every left pixel by half way: the probability is at its floor
    assert c.deletion[0, 8] == pytest.approx(c.deletion[0, -1], abs=1e-5)
    assert c.fractions[0] == 0 and c.fractions[-1] == 1 and len(c.fractions) == 17
    assert c.forwards == 3 + 2 * 3 * 15
    assert c.batches == 1 + -(-(2 * 3 * 15) // 20)


def test_batching_does_not_change_the_curves(toy):
    model, x, maps = toy
    a = perturbation_curves(model, x, maps, 0, n_steps=8, chunk_size=1)
    b = perturbation_curves(model, x, maps, 0, n_steps=8, chunk_size=500)
    assert b.batches == 2 and a.batches == 1 + 2 * 3 * 7
    np.testing.assert_allclose(a.deletion, b.deletion, atol=1e-6)
    np.testing.assert_allclose(a.insertion, b.insertion, atol=1e-6)


def test_maps_of_another_size_are_resized_and_ties_are_seeded(toy):
    model, x, maps = toy
    small = maps[:2, ::4, ::4]  # 8x8 versions of the half maps
    c = perturbation_curves(model, x, small, 0, n_steps=16)
    assert c.deletion_auc[0] < c.deletion_auc[1]
    again = perturbation_curves(model, x, small, 0, n_steps=16)
    np.testing.assert_array_equal(c.deletion, again.deletion)


def test_road_prefers_the_object_map(toy):
    model, x, maps = toy
    graded = maps[:2] + 1e-3 * random_map((SIZE, SIZE), seed=1)  # ROAD thresholds percentiles
    r = road_scores(model, x, graded, 0, percentiles=(30, 70))
    assert r["road"][0] > r["road"][1]
    assert r["morf"][0] < r["morf"][1]


def test_baseline_maps():
    r = random_map((20, 30), seed=1)
    assert r.shape == (20, 30) and torch.equal(r, random_map((20, 30), seed=1))
    smooth = random_map((28, 28), seed=1, grid=(7, 7))
    assert smooth.diff(dim=1).abs().mean() < r.diff(dim=1).abs().mean()
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8:] = 1.0  # a vertical edge
    s = sobel_map(x)
    assert s.max() == 1.0 and s[:, 7:9].min() > 0.9 and s[:, :6].max() == 0
    b = gaussian_blur(torch.ones(1, 3, 32, 32))
    assert b[0, :, 16, 16].allclose(torch.ones(3), atol=1e-5) and b[0, 0, 0, 0] < 0.5


def test_every_panel_is_scored_ranked_and_json_able(bundled, cat_path):
    r = xai.explain(bundled, cat_path, ("gradcam", "eigencam"), ("middle", "last"))
    table = score_explanation(bundled, r, n_steps=4, chunk_size=64)
    assert [(row["method"], row["depth"]) for row in table.rows] == [
        ("gradcam", "middle"), ("eigencam", "middle"), ("gradcam", "last"), ("eigencam", "last")]
    assert sorted(row["rank"] for row in table.rows) == [1, 2, 3, 4]
    assert sum(row["best"] for row in table.rows) == 1
    best = next(row for row in table.rows if row["best"])
    assert best["score"] == max(row["score"] for row in table.rows)
    for row in table.rows + table.baselines:
        assert 0 <= row["deletion_auc"] <= 1 and 0 <= row["insertion_auc"] <= 1
        assert row["score"] == pytest.approx(row["insertion_auc"] - row["deletion_auc"], abs=2e-4)
    assert [b["method"] for b in table.baselines] == ["random", "random-cam", "sobel"]
    assert table.forwards == 3 + 2 * 7 * 3 and table.batches == 2  # one batch + end points
    assert table.target["index"] == r.targets[0].index
    json.dumps(table.to_dict())
    assert "★" in table.markdown() and "sobel" in table.markdown()
