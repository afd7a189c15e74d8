"""Model-parameter randomisation: rank correlation and the cascade on the bundled model."""

from __future__ import annotations

import json

import pytest
import torch

import xai
from xai.sanity import randomisation_units, sanity_check, spearman


def test_spearman_known_values():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, a**3) == pytest.approx(1.0)  # ranks only
    assert spearman(a, torch.ones(2, 2)) is None
    # ties share their average rank: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4)
    assert spearman(torch.tensor([0.0, 1, 1, 2]), torch.arange(4.0)) == pytest.approx(
        0.9486833, abs=1e-6)


def test_the_cascade_covers_every_parameter_once(bundled):
    units = randomisation_units(bundled)
    assert units[0] == ("head", ["classifier"])
    assert [label for label, _ in units][1:] == [
        f"stage {i}: {s.name}" for i, s in reversed(list(enumerate(xai.stage_layers(bundled),
                                                                    1)))]
    names = [n for _, mods in units for n in mods]
    assert len(names) == len(set(names))
    covered = {id(p) for n in names for p in bundled.module.get_submodule(n).parameters(
        recurse=False)}
    assert covered == {id(p) for p in bundled.module.parameters()}
    assert "conv_head" in units[1][1] and "conv_stem" in units[-1][1]


@pytest.fixture(scope="module")
def report(bundled, cat_path):
    before = {k: v.clone() for k, v in bundled.module.state_dict().items()}
    r = xai.explain(bundled, cat_path, ("gradcam", "eigencam"), ("first", "last"))
    rep = sanity_check(bundled, r, max_steps=2)
    after = bundled.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the caller's model is intact
    return rep


def test_randomising_the_model_changes_class_maps_but_not_what_it_cannot_reach(report):
    rho = report.rho
    assert report.steps == ["head", "+ stage 5: bn2"]
    assert report.layer_step == {"first": 5, "last": 1}
    # Grad-CAM reads the head through its gradients: re-initialising the head changes the map
    assert rho["gradcam"]["last"][0] < 0.6
    assert abs(rho["gradcam"]["last"][1]) < 0.5
    # Eigen-CAM never reads the head, and the first layer's maps do not depend on stage 5
    assert rho["eigencam"]["last"][0] == pytest.approx(1.0)
    assert rho["eigencam"]["first"] == [pytest.approx(1.0)] * 2
    assert abs(rho["eigencam"]["last"][1]) < 0.5  # ... but randomising its stage changes it
    assert report.verdicts["gradcam"]["rho_head"] < report.verdicts["eigencam"]["rho_head"]


def test_verdicts_follow_the_threshold(report):
    for v in report.verdicts.values():
        # with the cascade capped at 2 steps only the last layer's own step was reached
        assert v["verdict"] == ("passes" if v["rho_layer"] < report.threshold else "fails")
    assert report.verdicts["gradcam"]["verdict"] == "passes"
    assert report.verdicts["eigencam"]["class_agnostic"] is True
    json.dumps(report.to_dict())
    assert "passes" in report.markdown()
