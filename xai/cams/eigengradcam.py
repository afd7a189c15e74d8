"""Eigen-Grad-CAM (pytorch-grad-cam; Eigen-CAM, Muhammad & Yeasin 2020, applied to the
gradient-weighted activations): the first principal component of dY/dA ⊙ A.

    M = ReLU( (X - mean X) v1 ),  X = (dY/dA ⊙ A) as an HW x C matrix, v1 its top right
    singular vector (sign fixed so that the larger extreme is positive, as our Eigen-CAM)

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["eigengradcam"])
    heat = r.cam("eigengradcam", "last")
"""

import torch

from .base import CamMethod
from .eigencam import first_component_projection


class EigenGradCAM(CamMethod):
    name = "eigengradcam"
    title = "Eigen-Grad-CAM"
    aliases = ("eigen-grad-cam",)

    def cam(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return first_component_projection(grads * acts)
