"""A representative sample of the zoos (random weights): three distinct, depth-ordered layers
whose resolution does not grow with depth, and finite maps in [0, 1]. The whole zoo is
``python scripts/zoo.py`` (docs/zoo.md)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import random_model

import xai
from xai.zoo import TRANSFORMERS_SET, check_explanation

# name -> input size to trace at (None: the model's own; size-agnostic CNNs run smaller)
SAMPLE: dict[str, tuple[int, int] | None] = {
    "resnet10t": (128, 128), "mobilenetv3_small_050": (128, 128),
    "convnext_zepto_rms": (128, 128), "regnetx_002": (128, 128),
    "ghostnet_050": (128, 128), "inception_next_atto": (128, 128),
    "edgenext_xx_small": (128, 128), "fastvit_t8": (128, 128), "repvit_m1": (128, 128),
    "poolformerv2_s12": (128, 128), "efficientformerv2_s0": None,
    "vit_tiny_patch16_224": None, "deit_tiny_distilled_patch16_224": None,
"pit_ti_224": None, "convit_tiny": None,
    "swin_tiny_patch4_window7_224": None, "pvt_v2_b0": None, "twins_svt_small": None,
    "coat_tiny": None, "levit_128s": None, "mobilevit_xxs": None, "mvitv2_tiny": None,
    "efficientformer_l1": None, "hiera_tiny_224": None, "crossvit_tiny_240": None,
    "volo_d1_224": None, "tnt_s_legacy_patch16_224": None, "gmlp_ti16_224": None,
    "caformer_s18": (128, 128), "tiny_vit_5m_224": None,
    "torchvision/alexnet": None, "torchvision/squeezenet1_1": None,
    "torchvision/swin_t": None, "torchvision/mobilenet_v3_small": (128, 128),
    "torchvision/googlenet": (128, 128), "torchvision/shufflenet_v2_x0_5": (128, 128),
    "torchvision/efficientnet_b0": (128, 128), "torchvision/regnet_x_400mf": (128, 128),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLE))
def test_sample_of_the_zoo_gets_three_sensible_layers(name, cat_path, one_torch_thread):
    model = xai.load_model(name, pretrained=False, device="cpu")
    if SAMPLE[name]:
        model.preprocessing = replace(model.preprocessing, input_size=SAMPLE[name])
    r = xai.explain(model, cat_path)
    assert check_explanation(model, r) == []
    last = r.layers["last"]
    for info in r.layers.values():
        assert info.kind not in ("Identity", "Dropout", "AdaptiveAvgPool2d", "Permute")
        assert not any(part in ("attn", "norm_q", "norm_v", "head", "classifier")
                       for part in info.name.split("."))
    assert last.shape[1] > 1 and last.shape[2] > 1


def test_vgg16_gets_the_grad_cam_papers_layers(cat_path, one_torch_thread):
    model = random_model("torchvision/vgg16")
    r = xai.explain(model, cat_path, methods=["gradcam"])
    names = [r.layers[d].name for d in xai.DEFAULT_DEPTHS]
    # conv1_2, conv3_3 and conv5_3 (after their ReLUs): the last is the paper's layer, 14x14
    assert names == ["features.3", "features.15", "features.29"]
    assert r.layers["last"].shape == (512, 14, 14)
    assert check_explanation(model, r) == []


def test_hierarchical_transformers_use_their_stages():
    swin = random_model("torchvision/swin_t")  # NHWC stage outputs
    assert [s.name for s in xai.stage_layers(swin)] == ["features.1", "features.3",
                                                        "features.5", "norm"]
    assert all(s.fmt == "NHWC" for s in xai.stage_layers(swin))
    pvt = random_model("pvt_v2_b0")
    assert [s.name for s in xai.stage_layers(pvt)] == [f"stages.{i}" for i in range(4)]


def test_token_grids_follow_prefix_tokens_and_non_square_inputs(cat_path):
    deit = random_model("deit_tiny_distilled_patch16_224")  # class + distillation tokens
    assert {s.prefix_tokens for s in xai.stage_layers(deit)} == {2}
    vit = xai.load_model("vit_tiny_patch16_224", pretrained=False, device="cpu")
    vit.module.set_input_size(img_size=(160, 320))  # 10 x 20 patches
    vit.preprocessing = replace(vit.preprocessing, input_size=(160, 320))
    assert {s.shape for s in xai.stage_layers(vit)} == {(192, 10, 20)}
    r = xai.explain(vit, cat_path, fit="full")
    assert r.cam("gradcam", "last").shape == r.image.shape[:2]


@pytest.mark.slow
@pytest.mark.parametrize("kind", TRANSFORMERS_SET)
def test_transformers_models_by_name_offline(kind, cat_path, one_torch_thread):
    pytest.importorskip("transformers")
    model = xai.load_model(f"hf:{kind}", pretrained=False, device="cpu")
    assert model.source == "transformers" and model.num_classes == 1000
    assert model.labels[281] == "tabby"
    r = xai.explain(model, cat_path)
    assert check_explanation(model, r) == []


def test_unknown_transformers_type_is_a_clear_error():
    pytest.importorskip("transformers")
    with pytest.raises(xai.UnknownModelError, match="model type"):
        xai.load_model("hf:not-a-model-type", pretrained=False)
