"""Guided backpropagation (Springenberg et al., 2015), for Guided Grad-CAM.

Instead of swapping modules (which mutates the model), a forward hook on each activation
module re-routes its output through a function whose backward keeps only positive gradients
(and, for ReLU/ReLU6, only where the unit was active). Functional activations
(``F.relu``) are not seen, as in pytorch-grad-cam.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Hardswish, nn.Mish,
               nn.ELU)


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, upper: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        mask = (x > 0) & (x < ctx.upper) & (grad > 0)
        return grad * mask, None


class _PositiveGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.clamp(min=0)


def _hook(module: nn.Module, args, out):
    if not isinstance(out, torch.Tensor):
        return None
    if isinstance(module, nn.ReLU6):
        return _GuidedReLU.apply(out, 6.0)
    if isinstance(module, nn.ReLU):
        return _GuidedReLU.apply(out, float("inf"))
    return _PositiveGrad.apply(out)


def guided_hooks(model: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Register guided-backprop hooks on every activation module; remove them when done."""
    return [m.register_forward_hook(_hook) for m in model.modules() if isinstance(m, ACTIVATIONS)]


def deprocess(grads: torch.Tensor) -> torch.Tensor:
    """(3, H, W) gradients -> (H, W, 3) uint8 picture (the keras-grad-cam convention)."""
    g = grads.permute(1, 2, 0).float()
    g = (g - g.mean()) / (g.std() + 1e-5) * 0.1 + 0.5
    return (g.clamp(0, 1) * 255).to(torch.uint8)
