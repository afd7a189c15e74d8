"""Feature grids, embedding maps aligned with the image, pooled embeddings in 2-D."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import xai
from xai.embeddings import (
    embed_images,
    embedding_figure,
    embedding_map,
    embedding_rgb,
    embedding_scatter,
    feature_grid,
    figure_image,
    layer_activations,
    nn_agreement,
    pooled_embeddings,
    principal_components,
    project_2d,
    top_channels,
)


@pytest.fixture(scope="module")
def explained(bundled, cat_path, coffee_path):
    return xai.explain_batch(bundled, [cat_path, coffee_path], ("eigencam",),
                             keep_activations=True)


def _two_regions(c: int = 8, h: int = 4, w: int = 6) -> torch.Tensor:
    """Left half positions share one vector, right half another (plus a little noise)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(c, generator=g), torch.randn(c, generator=g)
    act = torch.empty(c, h, w)
    act[:, :, : w // 2] = a[:, None, None]
    act[:, :, w // 2:] = b[:, None, None]
    return act + 1e-3 * torch.randn(c, h, w, generator=g)


def test_embedding_colours_separate_what_the_layer_separates():
    pic, ratio = embedding_rgb(_two_regions(), size=(40, 60))
    assert pic.shape == (40, 60, 3) and pic.dtype == np.uint8
    left, right = pic[:, :20].reshape(-1, 3).astype(int), pic[:, 40:].reshape(-1, 3).astype(int)
    assert np.ptp(left, axis=0).max() <= 8 and np.ptp(right, axis=0).max() <= 8  # uniform
    assert np.abs(left.mean(0) - right.mean(0)).max() > 100  # and different
    assert ratio[0] > 0.99 and sum(ratio) <= 1 + 1e-6


def test_principal_components_are_deterministic_and_padded():
    act = _two_regions()
    p1, r1 = principal_components(act, 3)
    p2, _ = principal_components(act.clone(), 3)
    assert p1.shape == (3, 4, 6) and torch.allclose(p1, p2)
    p, r = principal_components(torch.randn(2, 3, 3), 3)  # only 2 channels: 2 components
    assert p.shape == (3, 3, 3) and p[2].abs().max() == 0 and r[2] == 0


def test_top_channels_rank_by_mean():
    act = torch.zeros(5, 2, 2)
    for c, v in enumerate([0.1, 3.0, -1.0, 2.0, 0.5]):
        act[c] = v
    assert top_channels(act, 3) == [(1, 3.0), (3, 2.0), (4, 0.5)]


def test_activations_come_from_the_single_forward(explained, bundled):
    r = explained[0]
    assert r.passes["forward"] == 1 and set(r.activations) == set(r.depths)
    for depth in r.depths:
        assert tuple(r.activations[depth].shape) == r.layer(depth).shape
    # without kept maps, one hooked forward of the same input gives the same maps
    bare = xai.explain(bundled, r.image, ("eigencam",), fit="full")
    bare.input = r.input
    again = layer_activations(bare, bundled)
    for depth in r.depths:
        assert torch.allclose(again[depth], r.activations[depth], atol=1e-4)
    with pytest.raises(xai.XaiError):
        layer_activations(bare)


def test_embedding_map_is_aligned_with_the_explained_image(explained):
    r = explained[1]
    for depth in r.depths:
        pic = embedding_map(r, depth)
        assert pic.shape == r.image.shape and pic.dtype == np.uint8
        assert pic.std() > 5  # not a flat image
    fig = embedding_figure(r)
    assert isinstance(fig, Image.Image) and fig.width > 3 * 224


def test_feature_grid_is_a_labelled_picture(explained):
    grid = feature_grid(explained[0], "middle", k=8, cols=4, tile=64)
    assert isinstance(grid, Image.Image) and grid.mode == "RGB"
    assert grid.width == 4 * 70 + 6 and np.asarray(grid).std() > 10


def test_pooled_embeddings_projected_and_plotted(explained, bundled):
    pooled = pooled_embeddings(explained, "last")
    assert pooled.shape == (2, explained[0].layer("last").shape[0])
    fig = embedding_scatter(explained, names=["cat", "coffee"])
    assert len(fig.axes) == 3
    assert "tabby" in [t.get_text().split(": ")[-1] for t in fig.axes[0].texts]
    pic = figure_image(fig)
    assert pic.width > 3 * 300 and np.asarray(pic).std() > 5
    more = embed_images(bundled, [explained[0].image] * 3, ("last",), batch_size=2, fit="full")
    assert len(more) == 3 and all(m.passes["backward"] == 0 for m in more)


def test_projection_switches_to_tsne_for_larger_sets():
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(30, 10, generator=g)
    x[:15, 0] += 5  # two clusters in different directions
    x[15:, 1] += 5
    xy, used = project_2d(x, tsne_iter=300)
    assert used == "t-SNE" and xy.shape == (30, 2)
    xy, used = project_2d(x[:10])
    assert used == "PCA" and xy.shape == (10, 2)
    labels = ["a"] * 15 + ["b"] * 15
    assert nn_agreement(x, labels) == 1.0 and nn_agreement(x[:3], ["a", "b", "c"]) is None


def test_fallback_forward_is_not_altered_by_inplace_ops(cat_path):
    """DenseNet's in-place ReLU after `features` must not reach the fallback's feature maps."""
    from conftest import random_model

    model = random_model("torchvision/densenet121")
    kept = xai.explain(model, cat_path, methods=["eigencam"], depths=["last"],
                       keep_activations=True)
    bare = xai.explain(model, cat_path, methods=["eigencam"], depths=["last"])
    again = layer_activations(bare, model)["last"]
    assert (again < 0).any() and torch.allclose(again, kept.activations["last"])
