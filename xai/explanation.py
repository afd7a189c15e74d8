"""The result of :func:`xai.explain`: predictions, targets and every map, read by key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .cams import GUIDED, get_method, method_names
from .cams.guided import deprocess
from .errors import LayerError, MethodError, TargetError
from .layers import LayerInfo
from .postprocess import interpolate_map, normalise, resize_map
from .targets import class_index


@dataclass(frozen=True)
class Prediction:
    """One class with its probability."""

    index: int
    label: str
    probability: float

    def to_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "probability": self.probability}


class PanelKey(NamedTuple):
    """A map of an :class:`Explanation`: method, depth (as asked), class (None for a
    class-agnostic method)."""

    method: str
    depth: str
    target: int | None


@dataclass
class Explanation:
    """The maps for one image: ``cam(method, depth, target)`` gives any of them."""

    model: str
    image: np.ndarray  # RGB uint8 HxWx3: the region the model saw, which maps align with
    box: tuple[int, int, int, int]  # that region in the user's image
    input_size: tuple[int, int]
    predictions: list[Prediction]
    targets: list[Prediction]
    methods: tuple[str, ...]
    depths: tuple[str, ...]
    mode: str
    layers: dict[str, LayerInfo]
    timings: dict[str, float]
    passes: dict[str, int]
    maps: dict[PanelKey, torch.Tensor] = field(repr=False, default_factory=dict)
    guided_grads: dict[int, torch.Tensor] = field(repr=False, default_factory=dict)
    labels: Sequence[str] = field(repr=False, default=())  # the model's own list, not a copy
    input: torch.Tensor | None = field(repr=False, default=None)  # (1, 3, H, W) model input
    activations: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)  # depth -> CHW
    raw_maps: dict[PanelKey, torch.Tensor] = field(repr=False, default_factory=dict)

    @property
    def has_guided(self) -> bool:
        return bool(self.guided_grads)

    @property
    def panel_methods(self) -> list[str]:
        """The methods with a map per layer: the computed ones, then Guided Grad-CAM if any."""
        return list(self.methods) + ([GUIDED] if self.has_guided else [])

    def target_index(self, target: int | str | None = None) -> int:
        """The class index of ``target`` (None: the first explained target)."""
        if target is None:
            return self.targets[0].index
        idx = class_index(target, self.labels)
        if idx not in {t.index for t in self.targets}:
            raise TargetError(f"class {target!r} was not explained; explained: "
                              f"{', '.join(t.label for t in self.targets)}")
        return idx

    def target_prediction(self, target: int | str | None = None) -> Prediction:
        """The explained target ``target`` (None: the first) with its label and probability."""
        idx = self.target_index(target)
        return next(t for t in self.targets if t.index == idx)

    def layer(self, depth: str | float | None = None) -> LayerInfo:
        """The layer resolved for ``depth`` (None: the deepest requested)."""
        key = self.depths[-1] if depth is None else str(depth)
        if key not in self.layers:
            raise LayerError(f"depth {key!r} was not explained; "
                             f"explained: {', '.join(self.depths)}")
        return self.layers[key]

    def key(self, method: str, depth: str | float | None = None,
            target: int | str | None = None) -> PanelKey:
        """The :class:`PanelKey` of a computed map; typed errors for anything not explained."""
        self.layer(depth)  # raises LayerError for a depth that was not explained
        depth_key = self.depths[-1] if depth is None else str(depth)
        m = get_method(method)
        if m.name not in self.methods:
            raise MethodError(f"method {m.name!r} was not computed; computed: "
                              f"{', '.join(self.methods)} (registered: "
                              f"{', '.join(method_names())})")
        return PanelKey(m.name, depth_key, None if m.class_agnostic else self.target_index(target))

    def cam(self, method: str, depth: str | float | None = None, target: int | str | None = None,
            size: tuple[int, int] | None = None, *, relu: bool = True,
            scale: bool = True) -> np.ndarray:
        """Float32 HxW map at the explained image's size (or ``size`` = (h, w)).

        By default ReLU'd and min-max scaled to [0, 1], as the gallery shows it. ``relu=False``
        keeps the negative evidence; ``scale=False`` keeps the method's own units (captum's
        ``relu_attributions=False``): both read the raw map, bilinearly resized."""
        size = tuple(size or self.image.shape[:2])
        if str(method).strip().lower() == GUIDED:
            self.layer(depth)
            return self._guided_map(self.depths[-1] if depth is None else str(depth), target,
                                    size)
        key = self.key(method, depth, target)
        if relu and scale:
            return resize_map(self.maps[key], size).numpy()
        cam = interpolate_map(self.raw_maps[key].clamp(min=0) if relu else self.raw_maps[key],
                              size)
        return (normalise(cam[None])[0] if scale else cam).numpy()

    def guided_image(self, depth: str | float | None = None, target: int | str | None = None,
                     size: tuple[int, int] | None = None) -> np.ndarray:
        """Guided Grad-CAM as an RGB uint8 picture (guided backprop x Grad-CAM)."""
        self.layer(depth)  # raises LayerError for a depth that was not explained
        key = self.depths[-1] if depth is None else str(depth)
        g = self._guided_product(key, target)
        pic = deprocess(g).permute(2, 0, 1).unsqueeze(0).float()
        size = size or self.image.shape[:2]
        pic = F.interpolate(pic, size=tuple(size), mode="bilinear", align_corners=False)
        return pic[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()

    def _guided_product(self, key: str, target) -> torch.Tensor:
        if not self.guided_grads:
            raise MethodError("Guided Grad-CAM was not computed; pass guided=True")
        tgt = self.target_index(target)
        cam = resize_map(self.maps[PanelKey("gradcam", key, tgt)], self.input_size)
        return self.guided_grads[tgt] * cam.unsqueeze(0)

    def _guided_map(self, key: str, target, size) -> np.ndarray:
        g = self._guided_product(key, target).abs().amax(dim=0)
        return resize_map(g, size).numpy()

    def manifest(self) -> dict:
        """A JSON-able summary: model, predictions, targets, layers, timings."""
        return {
            "model": self.model,
            "mode": self.mode,
            "input_size": list(self.input_size),
            "image_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "explained_box": list(self.box),
            "predictions": [p.to_dict() for p in self.predictions],
            "targets": [t.to_dict() for t in self.targets],
            "methods": self.panel_methods,
            "layers": {d: info.to_dict() for d, info in self.layers.items()},
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "passes": dict(self.passes),
        }
