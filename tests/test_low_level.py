"""The documented low-level API: the shared pass, typed map keys, targets as callables,
signed maps, the frozen preprocessing, and --debug."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from xai.passes import MapKey, run_pass
from xai.postprocess import interpolate_map, normalise
from xai.targets import ClassTarget, RankTarget


def test_run_pass_with_a_list_of_targets_gives_typed_keys(bundled, cat_path):
    prep = xai.prepare(cat_path, bundled.preprocessing)
    layers = [xai.resolve_layer(bundled, d) for d in ("first", "last")]
    methods = [xai.METHODS["gradcam"], xai.METHODS["eigencam"]]
    with torch.inference_mode(False):
        run = run_pass(bundled, prep.tensor, layers, methods, [RankTarget(0), ClassTarget(504)])
    top1 = int(run.logits.argmax())
    assert run.targets == [[top1], [504]] and run.passes == {"forward": 1, "backward": 2}
    assert all(isinstance(k, MapKey) for k in run.maps)
    assert MapKey("gradcam", layers[1].name, 0, 504) in run.maps
    assert MapKey("eigencam", layers[0].name, 0, None) in run.maps
    # no targets: one forward, no backward, class-agnostic maps only
    with torch.inference_mode(False):
        fwd = run_pass(bundled, prep.tensor, layers, methods)
    assert fwd.passes == {"forward": 1, "backward": 0} and fwd.targets == []
    assert {k.method for k in fwd.maps} == {"eigencam"}


def test_signed_unscaled_maps_are_the_raw_method_output(bundled, cat_path):
    r = xai.explain(bundled, cat_path, keep_activations=True)
    acts = r.activations["last"][None]
    key = r.key("eigencam", "last")
    raw = xai.METHODS["eigencam"].cam(acts, None)[0]
    assert torch.allclose(r.raw_maps[key], raw, atol=1e-5)
    size = (40, 50)
    signed = r.cam("eigencam", "last", size=size, relu=False, scale=False)
    assert np.allclose(signed, interpolate_map(raw, size).numpy(), atol=1e-5)
    # Grad-CAM's raw map has negative evidence that the gallery's ReLU drops
    g = r.cam("gradcam", "first", relu=False, scale=False)
    assert g.min() < 0 < g.max()
    relu_only = r.cam("gradcam", "first", scale=False)
    assert relu_only.min() >= 0 and relu_only.max() == pytest.approx(g.max(), rel=1e-4)
    # relu + scale (the default) is the gallery's map, and scaling alone maps into [0, 1]
    scaled = r.cam("gradcam", "last", relu=False)
    assert scaled.min() == pytest.approx(0, abs=1e-6) and scaled.max() == pytest.approx(1, 1e-5)
    ref = normalise(r.raw_maps[r.key("gradcam", "last")].clamp(min=0)[None])[0]
    assert np.allclose(r.cam("gradcam", "last", size=tuple(ref.shape)), ref.numpy(), atol=1e-6)


def test_guided_image_checks_the_depth(bundled, cat_path):
    r = xai.explain(bundled, cat_path, depths=["last"], guided=True)
    with pytest.raises(xai.LayerError, match="not explained"):
        r.guided_image("first")


def test_explanations_share_the_models_labels(bundled, cat_path):
    a, b = xai.explain_batch(bundled, [cat_path, cat_path], methods=["gradcam"])
    assert a.labels is bundled.labels and b.labels is bundled.labels


def test_preprocessing_is_frozen_and_checked():
    p = xai.Preprocessing(input_size=[299, 299], mean=[0.5] * 3, std=[0.5] * 3)
    assert p.input_size == (299, 299) and p.mean == (0.5, 0.5, 0.5)
    with pytest.raises(AttributeError):
        p.crop_pct = 1.0  # type: ignore[misc]
    assert xai.Preprocessing.from_dict(p.to_dict()) == p
    for bad in ({"input_size": (0, 224)}, {"std": (1, 0, 1)}, {"interpolation": "cubic!"},
                {"crop_pct": float("nan")}, {"mean": (0.5, 0.5)}):
        with pytest.raises(xai.PreprocessingError):
            xai.Preprocessing(**bad)
    model = xai.wrap_model(torch.nn.Linear(3, 3), "tiny", input_size=(32, 48))
    assert model.preprocessing.input_size == (32, 48) == model.input_size
    with pytest.raises(xai.PreprocessingError):
        xai.wrap_model(torch.nn.Linear(3, 3), "tiny", size=(32, 48))


def test_cli_debug_shows_the_traceback(capsys):
    from xai.cli import main

    assert main(["layers", "no-such-model-xyz", "--random-weights"]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(xai.UnknownModelError):
        main(["layers", "no-such-model-xyz", "--random-weights", "--debug"])
