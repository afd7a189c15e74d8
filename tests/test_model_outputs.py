"""Every output shape a classifier can have, headless backbones, wrap_model, the trace lock."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest
import torch
from torch import nn

import xai
from xai.trace import Recorder


class _Backbone(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.stages = nn.Sequential(
            *(nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()) for _ in range(3)))
        self.fc = nn.Linear(8, classes) if classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x):
        f = self.features(x)
        return self.fc(f.mean(dim=(2, 3))) if self.fc is not None else f


class _TupleOut(_Backbone):
    def forward(self, x):
        return super().forward(x), torch.zeros(1)


class _DictOut(_Backbone):
    def forward(self, x):
        f = self.features(x)
        return {"features": f, "logits": self.fc(f.mean(dim=(2, 3)))}


class _Output:
    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


class _ObjectOut(_Backbone):
    def forward(self, x):
        return _Output(super().forward(x))


@pytest.mark.parametrize("cls", [_Backbone, _TupleOut, _DictOut, _ObjectOut])
def test_any_classifier_output_shape_explains(cls, cat_path):
    model = xai.wrap_model(cls(), "shapes", labels=["a", "b", "c"], input_size=(64, 64))
    r = xai.explain(model, cat_path, targets="b")
    assert [r.layers[d].name for d in xai.DEFAULT_DEPTHS] == ["stages.0", "stages.1", "stages.2"]
    assert r.targets[0].label == "b" and xai.predict(model, cat_path, k=1)[0].label in "abc"
    for depth in xai.DEFAULT_DEPTHS:
        cam = r.cam("gradcam", depth)
        assert cam.shape == r.image.shape[:2] and 0 <= cam.min() and cam.max() <= 1


def test_headless_backbones_are_refused_with_the_reason(cat_path):
    model = xai.wrap_model(_Backbone(classes=0), "backbone", input_size=(64, 64))
    with pytest.raises(xai.HeadlessModelError, match="without a classifier head"):
        xai.explain(model, cat_path)
    with pytest.raises(xai.HeadlessModelError, match="without a classifier head"):
        xai.predict(model, cat_path)
    # timm's configs with num_classes=0 (SAM's ViT, MAE checkpoints) never build a model
    with pytest.raises(xai.HeadlessModelError, match="backbone without a classifier head"):
        xai.load_model("samvit_base_patch16", pretrained=False)


def test_label_count_must_match_the_logits(cat_path):
    model = xai.wrap_model(_Backbone(classes=3), "three", labels=["a", "b"], input_size=(64, 64))
    with pytest.raises(xai.ModelOutputError, match="3 classes but has 2 labels"):
        xai.explain(model, cat_path)


def test_a_forward_without_logits_is_a_typed_error(cat_path):
    class Words(_Backbone):
        def forward(self, x):
            return "no logits here"

    model = xai.wrap_model(Words(), "words", labels=["a", "b", "c"], input_size=(64, 64))
    with pytest.raises(xai.ModelOutputError, match="not class logits"):
        xai.predict(model, cat_path)


class _Watched(_Backbone):
    """Records every device move."""

    moves: list = []

    def to(self, *args, **kwargs):
        self.moves.append((args, kwargs))
        return super().to(*args, **kwargs)

    def cuda(self, *args, **kwargs):
        self.moves.append(("cuda", args))
        return super().cuda(*args, **kwargs)


def test_wrap_model_changes_nothing_global(cat_path):
    before = xai.registered_models()
    module = _Watched()
    module.train()
    model = xai.wrap_model(module, xai.DEFAULT_MODEL, labels=["a", "b", "c"],
                           input_size=(64, 64))
    xai.explain(model, cat_path)
    assert xai.registered_models() == before and _Watched.moves == []
    assert module.training, "train/eval flags come back after the pass"
    assert xai.load_model().module is not module  # the bundled name still means the bundle
    ref = weakref.ref(module)
    del model, module
    gc.collect()
    assert ref() is None, "nothing global keeps a wrapped module alive"


def test_trace_runs_under_the_model_lock(cat_path, monkeypatch):
    """A predict() during the layer trace must wait: its forward would otherwise run through
    the recorder's hooks (every module seen twice) and corrupt the cached trace."""
    model = xai.wrap_model(_Backbone(), "locked", labels=["a", "b", "c"], input_size=(64, 64))
    attached = threading.Event()
    real_attach = Recorder.attach

    def slow_attach(self):
        real_attach(self)
        attached.set()
        time.sleep(0.5)  # a window in which an unlocked predict() would run its forward

    monkeypatch.setattr(Recorder, "attach", slow_attach)
    tracer = threading.Thread(target=xai.stage_layers, args=(model,))
    tracer.start()
    assert attached.wait(10)
    xai.predict(model, cat_path, k=1)  # takes model.lock: runs after the trace
    tracer.join()
    tr = model.layer_trace
    assert all(ev.calls == 1 for ev in tr.events), "a concurrent forward leaked into the trace"
    assert [s.name for s in tr.stages] == ["stages.0", "stages.1", "stages.2"]
