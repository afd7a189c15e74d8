"""Grad-CAM (Selvaraju et al., ICCV 2017, arXiv:1610.02391): channel weights are the spatial
mean of the gradients.

    w_c = mean_hw dY/dA_c,   M = ReLU( sum_c w_c A_c )

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["gradcam"])
    heat = r.cam("gradcam", "last")
"""

import torch

from .base import CamMethod


class GradCAM(CamMethod):
    name = "gradcam"
    title = "Grad-CAM"

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean(dim=(2, 3))
