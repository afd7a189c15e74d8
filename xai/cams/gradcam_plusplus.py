"""Grad-CAM++ (Chattopadhyay et al., 2018), eq. 19, as pytorch-grad-cam computes it."""

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
