"""XGrad-CAM (Fu et al., BMVC 2020, arXiv:2008.02312): gradients weighted by normalised
activations.

    w_c = sum_hw g_c A_c / (sum_hw A_c + 1e-7),   M = ReLU( sum_c w_c A_c )

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["xgradcam"])
    heat = r.cam("xgradcam", "last")
"""

import torch

from .base import CamMethod


class XGradCAM(CamMethod):
    name = "xgradcam"
    title = "XGrad-CAM"

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        sum_acts = acts.sum(dim=(2, 3), keepdim=True)
        return (grads * acts).div_(sum_acts + 1e-7).sum(dim=(2, 3))
