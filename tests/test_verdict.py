"""Which map to believe: the removal protocol on known answers, per-panel sanity, the words."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import xai
from xai.metaeval import (
    HARD_LAYOUTS,
    box_mask,
    composite,
    hard_scene,
    known_maps,
    peak_in_half,
)
from xai.perturbation import ProtocolError, bootstrap, cell_ranks, removal_curves
from xai.sanity import sanity_check
from xai.verdict import PROTOCOL, PanelVerdict, class_rho, judge
from xai.verdict_text import describe

SIZE = 32


class LeftHalf(nn.Module):
    """Class 0's logit is the energy of the left half (texture); class 1 is constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, :, :, : x.shape[-1] // 2].pow(2).mean(dim=(1, 2, 3)) * 10
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_cells_are_removed_by_their_mean_relevance():
    m = torch.zeros(1, 8, 8)
    m[0, :4, 4:] = 1.0  # top-right 4x4 cell
    m[0, 4:, :4] = 0.5  # bottom-left
    ranks = cell_ranks(m, 4, seed=0)[0]
    assert ranks[0, 7] == 0 and ranks[7, 0] == 1 and set(ranks.unique().tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("fill", ["mean", "blur", "road"])
def test_the_object_map_wins_on_a_model_that_only_reads_it(fill):
    model = xai.LoadedModel("left", LeftHalf().eval(), ["left", "other"], (SIZE, SIZE))
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    left = torch.zeros(SIZE, SIZE)
    left[:, : SIZE // 2] = 1
    c = removal_curves(model, x, torch.stack([left, 1 - left]), 0, patch=4, fill=fill, n_steps=8)
    s = c.scores("lerf-morf")
    assert s[0] > 0.3 and s[1] < -0.3  # the right half is irrelevant: the wrong order
    assert c.logit["morf"][0, 4] == pytest.approx(c.logit["morf"][0, -1], abs=0.3)
    assert c.forwards <= 2 + 2 * 2 * 7  # steps whose removed cells coincide go through once
    with pytest.raises(ProtocolError):
        removal_curves(model, x, left, 0, fill="zeros")


def test_a_repeated_map_costs_no_forward_and_gets_the_same_curve():
    model = xai.LoadedModel("left", LeftHalf().eval(), ["left", "other"], (SIZE, SIZE))
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0, 1, SIZE).expand(SIZE, SIZE)
    one = removal_curves(model, x, ramp[None], 0, patch=4, fill="blur", n_steps=8)
    noise = torch.rand(SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    two = removal_curves(model, x, torch.stack([ramp, noise, ramp]), 0, patch=4,
                         fill="blur", n_steps=8, chunk_size=3)
    assert one.forwards == 2 + 2 * 7 and two.forwards == 2 + 2 * 2 * 7
    for order in ("morf", "lerf"):
        np.testing.assert_allclose(two.logit[order][0], one.logit[order][0], atol=1e-5)
        np.testing.assert_allclose(two.logit[order][2], one.logit[order][0], atol=1e-5)
    assert not np.allclose(two.logit["morf"][1], two.logit["morf"][0])


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_agreement():
    w = np.full(9, 1 / 9)
    flat, noisy = np.ones(9), np.array([0, 2, 0, 2, 0, 2, 0, 2, 1.0])
    lo, hi = bootstrap(np.stack([flat, noisy]), w)
    assert lo[0] == hi[0] == pytest.approx(1.0)
    assert lo[1] < 1 < hi[1]


@pytest.fixture(scope="module")
def sheet(bundled):
    """Chelsea the cat (tabby, 281) left of a coffee cup (espresso, 967)."""
    from skimage import data

    img = composite(Image.fromarray(data.chelsea()), Image.fromarray(data.coffee()))
    return xai.explain(bundled, img, xai.DEFAULT_METHODS, xai.DEFAULT_DEPTHS,
                       targets=[281, 967], fit="full")


@pytest.mark.parametrize("target,left", [(281, True), (967, False)])
def test_chosen_protocol_ranks_the_object_above_complement_and_other_object(bundled, sheet,
                                                                            target, left):
    maps = known_maps(sheet.input, left)  # object, complement, other, shifted, edges, blob
    c = removal_curves(bundled, sheet.input, maps, target, patch=PROTOCOL["patch"],
                       fill=PROTOCOL["fill"], n_steps=PROTOCOL["n_steps"])
    s = c.scores(PROTOCOL["score"])
    assert s[0] > s[1] and s[0] > s[2], s
    assert s[0] == s.max()


def test_class_sensitivity_detects_the_class_agnostic_map(bundled, sheet):
    rho = class_rho(bundled, sheet, 281, 967)
    assert rho[("eigencam", "last")] == pytest.approx(1.0)
    assert abs(rho[("gradcam", "last")]) < 0.5  # the cat's map is not the cup's


def test_sanity_is_judged_per_panel_not_averaged_over_depths(bundled, cat_path):
    r = xai.explain(bundled, cat_path, ("gradcam++",), ("middle", "last"))
    rho = {d: abs(p["rho"]) for d, p in
           sanity_check(bundled, r).verdicts["gradcam++"]["panels"].items()}
    lo, hi = min(rho.values()), max(rho.values())
    assert hi - lo > 0.1, rho
    mean = (lo + hi) / 2
    threshold = mean + (hi - lo) / 4  # the mean of the depths passes, the worst depth fails
    v = sanity_check(bundled, r, threshold=threshold).verdicts["gradcam++"]
    worst = max(rho, key=rho.get)
    assert v["verdict"] == "fails" and v["failing_depths"] == [worst]
    assert v["rho_layer"] == pytest.approx(hi, abs=1e-3)
    assert {d: p["verdict"] for d, p in v["panels"].items()} == {
        d: ("fails" if d == worst else "passes") for d in rho}


def _panel(method, depth, score, *, faithful=True, cls=True, sane=True, stable=True, width=0.1):
    return PanelVerdict(method, depth, "l", score, score - width, score + width, faithful,
                        {"random": faithful, "smooth random": faithful, "edges": faithful},
                        0.1 if cls else 1.0, cls, 0.1 if sane else 0.7, sane, 0.2 if stable
                        else 0.9, stable)


def _values(scores, spread):
    """Per-step values with the given means (weights uniform over 5 steps)."""
    return np.stack([s + spread * np.array([-2, -1, 0, 1, 2.0]) for s in scores])


def test_verdict_words_state_disagreements_and_never_crown_a_class_agnostic_map():
    panels = [_panel("eigencam", "last", 0.9, cls=False), _panel("gradcam++", "last", 0.8,
              sane=False), _panel("gradcam", "last", 0.5), _panel("xgradcam", "first", 0.1,
              faithful=False)]
    w = np.full(5, 0.2)
    text = describe(panels, _values([p.score for p in panels], 0.01), w, "tabby", "espresso")
    assert [p.best for p in panels] == [False, False, True, False]
    assert "class-agnostic" in panels[0].text and panels[0].badge.endswith("class-agnostic")
    assert panels[1].text.startswith("localises but fails the sanity check")
    assert "not distinguishable from the random, smooth random, edges baselines" in panels[3].text
    assert text.startswith("Believe gradcam @ last for tabby")
    assert "eigencam @ last scores higher, but it is faithful but class-agnostic" in text


def test_overlapping_intervals_are_not_distinguishable_and_no_faithful_panel_no_best():
    panels = [_panel("gradcam", "last", 0.52), _panel("xgradcam", "last", 0.50)]
    steps = np.array([-2, -1, 0, 1, 2.0]) * 0.3  # the two curves disagree step by step
    text = describe(panels, np.stack([0.52 + steps, 0.50 - steps]), np.full(5, 0.2), "tabby",
                    "tv")
    assert panels[0].best and "not distinguishable from xgradcam @ last" in text
    # the same gap with curves that agree step by step is a real difference (paired bootstrap)
    text = describe(panels, _values([0.52, 0.50], 0.3), np.full(5, 0.2), "tabby", "tv")
    assert "not distinguishable" not in text
    weak = [_panel("gradcam", "last", 0.2, faithful=False),
            _panel("eigencam", "last", 0.3, faithful=False, cls=False)]
    text = describe(weak, _values([0.2, 0.3], 0.1), np.full(5, 0.2), "tabby", "tv")
    assert not any(p.best for p in weak) and "none is marked best" in text
    assert "Class-, model-sensitive and stable: gradcam @ last." in text


def test_judge_on_the_sheet_points_the_best_panel_at_the_target(bundled, sheet):
    v = judge(bundled, sheet, 967)  # the cup, on the right; sanity not run
    best = v.best
    assert best is not None and best.method != "eigencam"
    cam = sheet.cam(best.method, best.depth, 967)
    assert np.unravel_index(int(cam.argmax()), cam.shape)[1] >= cam.shape[1] // 2
    assert all(p.model_sensitive is None and "sanity check not run" in p.text for p in v.panels)
    assert [b["name"] for b in v.baselines] == ["random", "smooth random", "edges"]
    assert 0 < v.forwards <= 2 + 2 * 15 * (12 + 2 + 3 + 1)  # 12 panels, 6 baseline maps


def test_known_answer_maps_have_the_known_geometry():
    x = torch.randn(1, 3, 224, 224)
    obj, comp, other, shifted, edges, blob = known_maps(x, left=True)
    assert obj[56:168, :112].min() == 1 and obj.sum() == 112 * 112
    assert torch.equal(comp, 1 - obj) and (obj * other).sum() == 0
    assert other[56:168, 112:].min() == 1
    assert (shifted * obj).sum() == obj.sum() / 2  # half on the object, half on the other
    assert blob.argmax() == 111 * 224 + 111 and edges.max() == 1


def test_a_class_map_that_does_not_change_is_not_called_class_agnostic():
    same = _panel("gradcam", "last", 0.5, cls=False)
    describe([same], _values([0.5], 0.01), np.full(5, 0.2), "espresso", "teapot")
    assert same.badge == "◐ same for other classes" and not same.best
    assert "barely changes with the target (ρ 1.00 between espresso and teapot)" in same.text


def test_a_panel_tied_only_with_the_edge_map_is_best_supported_never_believed():
    tied = _panel("gradcam", "last", 0.6, faithful=False)
    tied.beats = {"random": True, "smooth random": True, "edges": False}
    noisy = _panel("gradcam++", "first", 0.8, faithful=False, stable=False)
    noisy.beats = dict(tied.beats)
    lost = _panel("xgradcam", "middle", 0.7, faithful=False)
    lost.beats = {"random": True, "smooth random": False, "edges": False}
    w = np.full(5, 0.2)
    text = describe([noisy, lost, tied], _values([0.8, 0.7, 0.6], 0.01), w, "moped", "tv")
    assert [p.best for p in (noisy, lost, tied)] == [False, False, True]
    assert tied.badge == "◑ ≈ edge map" and lost.badge == "? ≈ baseline"
    assert text.startswith("Best supported for moped: gradcam @ last")
    assert "not as proven" in text and "gradcam++ @ first scores higher" in text
    # a panel that beats every baseline is believed ahead of a higher-scoring tied one
    believed = _panel("xgradcam", "last", 0.5)
    text = describe([tied, believed], _values([0.6, 0.5], 0.01), w, "moped", "tv")
    assert believed.best and not tied.best and text.startswith("Believe xgradcam @ last")


def test_hard_scene_puts_each_small_object_in_its_box():
    red, blue = Image.new("RGB", (50, 50), (255, 0, 0)), Image.new("RGB", (50, 50), (0, 0, 255))
    grey = Image.new("RGB", (300, 200), (128, 128, 128))
    for layout in HARD_LAYOUTS:
        sheet = np.asarray(hard_scene(red, blue, grey, layout)).astype(int)
        for box, colour in zip(layout, ((255, 0, 0), (0, 0, 255))):
            inside = box_mask(sheet.shape[:2], box).numpy().astype(bool)
            assert np.abs(sheet[inside] - colour).max() <= 1  # the object fills its box
        x = torch.from_numpy(sheet).permute(2, 0, 1)[None].float()
        obj, comp, other, shifted, _, _ = known_maps(x, True, layout)
        assert torch.equal(comp, 1 - obj) and (obj * other).sum() == 0
        assert (shifted * obj).sum() == pytest.approx(obj.sum() / 2, rel=0.05)
        assert obj.sum() / obj.numel() == pytest.approx(layout[0][2] ** 2, rel=0.05)


def test_an_inverted_map_for_other_classes_is_worded_as_such():
    flip = _panel("gradcam++", "first", 0.1, faithful=False, cls=False)
    flip.class_rho = -0.6
    describe([flip], _values([0.1], 0.01), np.full(5, 0.2), "tabby", "teapot")
    assert "nearly its negative (ρ -0.60 between tabby and teapot)" in flip.text
    assert "barely changes" not in flip.text


def test_a_map_points_at_the_half_of_its_peak_and_a_flat_map_nowhere():
    cam = np.zeros((4, 8))
    cam[1, 2] = 1.0
    assert peak_in_half(cam, left=True) and not peak_in_half(cam, left=False)
    assert not peak_in_half(np.ones((4, 8)), left=True)
    assert not peak_in_half(np.ones((4, 8)), left=False)
