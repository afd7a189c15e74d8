"""The methods that run their own batched passes (Score-CAM, Ablation-CAM, FullGrad), after the
shared pass: raw maps made >= 0 and scaled to [0, 1] as the one-pass maps are."""

from __future__ import annotations

import torch

from .cams.fullgrad import fullgrad_maps
from .layers import LayerInfo


def _scaled(m: torch.Tensor) -> torch.Tensor:
    m = m.float().clamp(min=0)
    lo, hi = torch.aminmax(m)
    return ((m - lo) / (hi - lo + 1e-7)).cpu()


def perturbation_maps(module: torch.nn.Module, x: torch.Tensor, layers: list[LayerInfo],
                      acts: dict[str, torch.Tensor], methods: list, targets: list[list[int]],
                      logits: torch.Tensor, passes: dict) -> dict:
    """{(method, layer, image, class): (h, w) map in [0, 1]} (FullGrad: at the input's size,
    the same for every layer)."""
    maps: dict = {}
    for m in methods:
        if getattr(m, "layer_free", False):
            found = fullgrad_maps(module, x, targets, passes)
            for info in layers:
                maps.update({(m.name, info.name, i, c): _scaled(v)
                             for (i, c), v in found.items()})
            continue
        for info in layers:
            found = m.layer_maps(module, x, info, acts[info.name].detach(), targets, logits,
                                 passes)
            maps.update({(m.name, info.name, i, c): _scaled(v) for (i, c), v in found.items()})
    return maps
