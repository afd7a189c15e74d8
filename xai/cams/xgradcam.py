"""XGrad-CAM (Fu et al., 2020): gradients weighted by normalised activations."""

import torch

from .base import CamMethod


class XGradCAM(CamMethod):
    name = "xgradcam"
    title = "XGrad-CAM"

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        sum_acts = acts.sum(dim=(2, 3), keepdim=True)
        return (grads * acts).div_(sum_acts + 1e-7).sum(dim=(2, 3))
