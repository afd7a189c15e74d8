"""Layer depth across architectures: executed conv counts and stage choices."""

from __future__ import annotations

import math

import pytest
from conftest import random_model
from torch import nn

import xai

REFERENCE = {  # model -> (executed convs, stage names first..last: the stem is not a stage)
    "resnet152": (155, ["layer1", "layer2", "layer3", "layer4"]),
    "torchvision/resnet152": (155, ["layer1", "layer2", "layer3", "layer4"]),
    "densenet121": (120, ["features.denseblock1", "features.denseblock2",
                          "features.denseblock3", "features.norm5"]),
    "torchvision/densenet121": (120, ["features.denseblock1", "features.denseblock2",
                                      "features.denseblock3", "features.norm5"]),
    "inception_v3": (94, ["Mixed_5d", "Mixed_6e", "Mixed_7c"]),
    "torchvision/inception_v3": (94, ["Mixed_5d", "Mixed_6e", "Mixed_7c"]),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_models_conv_counts_and_stages(name):
    model = random_model(name)
    count, stages = REFERENCE[name]
    convs = xai.conv_layers(model)
    assert len(convs) == count
    assert [c.index for c in convs] == list(range(1, count + 1))
    assert [s.name for s in xai.stage_layers(model)] == stages
    first, middle, last = (xai.resolve_layer(model, d, mode="convs") for d in xai.DEFAULT_DEPTHS)
    assert (first.index, middle.index, last.index) == (1, math.ceil(count / 2), count)
    assert last.position == f"conv {count}/{count}"
    n = len(stages)
    s_last = xai.resolve_layer(model, "last")
    assert s_last.name == stages[-1] and s_last.position == f"stage {n}/{n}"
    assert xai.resolve_layer(model, "middle").name == stages[math.ceil(n / 2) - 1]
    assert xai.resolve_layer(model, "first").name == stages[0]
    # last stage = the map global pooling reads: 7x7 at 224 px, 8x8 for Inception at 299 px
    assert s_last.shape[1:] == ((8, 8) if "inception" in name else (7, 7))


def test_inception_aux_convs_are_registered_but_never_run_nor_chosen():
    model = random_model("torchvision/inception_v3")
    registered = [n for n, m in model.module.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(registered) == 96
    executed = [c.name for c in xai.conv_layers(model)]
    assert not any(n.startswith("AuxLogits") for n in executed)
    last = xai.resolve_layer(model, "last", mode="convs")
    assert last.name == "Mixed_7c.branch_pool.conv"
    assert "single branch of Mixed_7c" in last.description
    with pytest.raises(xai.LayerError, match="does not run"):
        xai.resolve_layer(model, "AuxLogits.conv0.conv")


def test_vit_blocks_are_the_stages_with_token_grid():
    model = random_model("vit_base_patch16_224")
    stages = xai.stage_layers(model)
    assert all(s.fmt == "NLC" and s.shape == (768, 14, 14) and s.prefix_tokens == 1
               for s in stages)
    assert [s.name for s in stages] == [f"blocks.{i}" for i in range(11)]
    # class-token pooling: the last block's output feeds only the class token, so its patch
    # positions get no gradient; the block before it is the last whose map can answer
    assert "class token" in stages[-1].note
    assert xai.resolve_layer(model, "middle").name == "blocks.5"


def test_convnext_and_efficientnet_last_stage_feeds_pooling(bundled):
    assert xai.resolve_layer(bundled, "last").name == "bn2"  # after conv_head, 1280 channels
    assert xai.resolve_layer(bundled, "last").shape == (1280, 7, 7)
    assert xai.resolve_layer(random_model("convnext_tiny"), "last").name == "stages.3"


def test_depth_forms(bundled):
    n = len(xai.stage_layers(bundled))
    assert xai.resolve_layer(bundled, 0.0) == xai.resolve_layer(bundled, "first")
    assert xai.resolve_layer(bundled, "1") == xai.resolve_layer(bundled, "last")
    assert xai.resolve_layer(bundled, 0.5).index == math.ceil(n / 2)
    assert xai.resolve_layer(bundled, "conv:1").name == "conv_stem"
    named = xai.resolve_layer(bundled, "blocks.3")
    assert named.name == "blocks.3" and named.mode == "module" and named.shape == (80, 14, 14)
    d = xai.resolve_layer(bundled, "last").to_dict()
    assert d["description"].startswith("bn2 (BatchNormAct2d), stage 5/5, 1280×7×7")


@pytest.mark.parametrize("bad", ["conv:0", "conv:99999", "-0.1", "1.5", "nope.layer", "",
                                 "classifier", "nan"])
def test_bad_depths_raise_layer_error(bundled, bad):
    with pytest.raises(xai.LayerError):
        xai.resolve_layer(bundled, bad)


def test_bad_mode(bundled):
    with pytest.raises(xai.LayerError, match="mode"):
        xai.resolve_layer(bundled, "last", mode="blocks")
