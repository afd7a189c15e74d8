"""Grad-CAM++ (Chattopadhyay et al., WACV 2018, arXiv:1710.11063), eq. 19, as pytorch-grad-cam
computes it (exponential head: higher derivatives as powers of the gradient g):

    a = g^2 / (2 g^2 + sum_hw A * g^3 + 1e-6),   w_c = sum_hw a ReLU(g),
    M = ReLU( sum_c w_c A_c )

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["gradcam++"])
    heat = r.cam("gradcam++", "last")
"""

import torch

from .base import CamMethod


class GradCAMPlusPlus(CamMethod):
    name = "gradcam++"
    title = "Grad-CAM++"
    aliases = ("gradcampp", "gradcam-plusplus")

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        sum_acts = acts.sum(dim=(2, 3), keepdim=True)
        g2 = grads * grads
        aij = g2.div_((sum_acts * (g2 * grads)).add_(g2, alpha=2).add_(1e-6))
        # where grads == 0, aij is 0 and so is relu(grads): the reference's mask changes nothing
        return (grads.clamp(min=0) * aij).sum(dim=(2, 3))
