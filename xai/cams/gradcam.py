"""Grad-CAM (Selvaraju et al., 2017): channel weights are the spatial mean of the gradients."""

import torch

from .base import CamMethod


class GradCAM(CamMethod):
    name = "gradcam"
    title = "Grad-CAM"

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean(dim=(2, 3))
