"""FullGrad (Srinivas & Fleuret, NeurIPS 2019, arXiv:1905.00780): input-gradient and
bias-gradient maps of every layer, summed.

    M = sum_ch s(|x ⊙ dY/dx|) + sum_layers sum_ch up(s(|b ⊙ dY/dz|)),
    s = per-channel min-max scaling, b the effective bias of each Conv2d / BatchNorm2d (as
    pytorch-grad-cam: exact types only, so timm's fused BatchNormAct2d is not counted)

It ignores the requested layer (the same map at every depth) and runs its own forward and one
backward per target (``passes["fullgrad_forward"]``, ``passes["fullgrad_backward"]``).

    r = xai.explain("resnet18", "cat.png", methods=["fullgrad"], depths=["last"])
    heat = r.cam("fullgrad")
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import class_logits
from .base import CamMethod


def effective_bias(layer: nn.Module) -> torch.Tensor:
    """A Conv2d's bias, or a BatchNorm2d's b - mean * w / sqrt(var + eps)."""
    if isinstance(layer, nn.BatchNorm2d):
        return layer.bias - layer.running_mean * layer.weight / torch.sqrt(
            layer.running_var + layer.eps)
    return layer.bias


def _scaled_sum(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) >= 0 -> (N, H, W): each channel min-max scaled, summed, resized."""
    flat = t.reshape(t.shape[0], t.shape[1], -1)
    lo, hi = flat.amin(dim=2, keepdim=True), flat.amax(dim=2, keepdim=True)
    s = ((flat - lo) / (hi - lo + 1e-7)).sum(dim=1).reshape(t.shape[0], 1, *t.shape[2:])
    return F.interpolate(s, size=size, mode="bilinear", align_corners=False)[:, 0]


def fullgrad_maps(module: nn.Module, x: torch.Tensor, targets: list[list[int]],
                  passes: dict) -> dict:
    """{(image, class): (H, W) raw map} for every target."""
    layers = [m for m in module.modules()
              if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None]
    outs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, a, o: (outs.append(o), o.clone())[1])
             for m in layers]
    out: dict = {}
    try:
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            logits = class_logits(module(xg))
            passes["fullgrad_forward"] = passes.get("fullgrad_forward", 0) + 1
            rows = torch.arange(x.shape[0], device=x.device)
            for rank, classes in enumerate(targets):
                score = logits[rows, torch.as_tensor(classes, device=x.device)].sum()
                grads = torch.autograd.grad(score, [xg] + outs, allow_unused=True,
                                            retain_graph=rank < len(targets) - 1)
                passes["fullgrad_backward"] = passes.get("fullgrad_backward", 0) + 1
                with torch.no_grad():
                    total = _scaled_sum((grads[0] * x).abs().float(), x.shape[-2:])
                    for layer, g in zip(layers, grads[1:]):
                        if g is not None:
                            b = effective_bias(layer).detach()[None, :, None, None]
                            total += _scaled_sum((b * g).abs().float(), x.shape[-2:])
                for i, c in enumerate(classes):
                    out[(i, int(c))] = total[i]
    finally:
        for h in hooks:
            h.remove()
    return out


class FullGrad(CamMethod):
    name = "fullgrad"
    title = "FullGrad"
    aliases = ("full-grad",)
    uses_gradients = False
    perturbation = True
    layer_free = True
    in_all = False
