"""Grad-CAM element-wise (pytorch-grad-cam's GradCAMElementWise; the HiResCAM paper, Draelos &
Carin 2020, with a ReLU on every product before the channel sum):

    M = ReLU( sum_c ReLU(dY/dA_c ⊙ A_c) )

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["gradcam-elementwise"])
    heat = r.cam("gradcam-elementwise", "last")
"""

import torch

from .base import CamMethod


class GradCAMElementWise(CamMethod):
    name = "gradcam-elementwise"
    title = "Grad-CAM element-wise"
    aliases = ("gradcamelementwise", "grad-cam-elementwise", "elementwise")

    def cam(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return (grads * acts).clamp_(min=0).sum(dim=1)
