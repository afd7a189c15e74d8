"""Grad-CAM++ (Chattopadhyay et al., 2018), eq. 19, as pytorch-grad-cam computes it."""

import torch

from .base import CamMethod


class GradCAMPlusPlus(CamMethod):
    name = "gradcam++"
    title = "Grad-CAM++"

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        g2 = grads ** 2
        g3 = g2 * grads
        sum_acts = acts.sum(dim=(2, 3), keepdim=True)
        aij = g2 / (2 * g2 + sum_acts * g3 + 1e-6)
        aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
        return (grads.clamp(min=0) * aij).sum(dim=(2, 3))
