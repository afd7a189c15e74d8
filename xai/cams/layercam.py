"""LayerCAM (Jiang et al., IEEE TIP 2021, "LayerCAM: Exploring Hierarchical Class Activation
Maps for Localization"): every position weighted by its own positive gradient.

    M = ReLU( sum_c ReLU(dY/dA_c) ⊙ A_c )

Its fusion across layers is :func:`xai.cams.fusion.fused_map` (``"layercam-fusion"``).

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["layercam"])
    heat = r.cam("layercam", "first")
"""

import torch

from .base import CamMethod


class LayerCAM(CamMethod):
    name = "layercam"
    title = "LayerCAM"
    aliases = ("layer-cam",)

    def cam(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return (grads.clamp(min=0) * acts).sum(dim=1)  # faster than einsum on a CPU
