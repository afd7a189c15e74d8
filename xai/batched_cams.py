"""The methods that run their own batched passes (Score-CAM, Ablation-CAM, FullGrad), after the
shared pass: their raw maps, which :mod:`xai.passes` ReLUs and scales as the one-pass maps."""

from __future__ import annotations

import torch

from .cams.fullgrad import fullgrad_maps
from .layers import LayerInfo


def perturbation_maps(module: torch.nn.Module, x: torch.Tensor, layers: list[LayerInfo],
                      acts: dict[str, torch.Tensor], methods: list, targets: list[list[int]],
                      logits: torch.Tensor, passes: dict) -> dict:
    """{(method, layer, image, class): raw (h, w) map} (FullGrad: at the input's size, the
    same for every layer)."""
    maps: dict = {}
    for m in methods:
        if getattr(m, "layer_free", False):
            found = fullgrad_maps(module, x, targets, passes)
            for info in layers:
                maps.update({(m.name, info.name, i, c): v
                             for (i, c), v in found.items()})
            continue
        for info in layers:
            found = m.layer_maps(module, x, info, acts[info.name].detach(), targets, logits,
                                 passes)
            maps.update({(m.name, info.name, i, c): v for (i, c), v in found.items()})
    return maps
