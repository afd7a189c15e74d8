"""KPCA-CAM (Karmani et al., 2024, arXiv:2410.00267): Eigen-CAM with kernel PCA.

    M = ReLU( first kernel principal component of the centred HW x C activations ),
    kernel k(x, y) = tanh(gamma <x, y> + 1), gamma = 1 / C  (scikit-learn's KernelPCA, as
    pytorch-grad-cam's KPCA_CAM)

It forms an HW x HW kernel: ~1 s on a 28x28 map, far more on a 112x112 first stage, so it is
opt-in (not in ``ALL_ONE_PASS``).

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["kpcacam"], depths=["last"])
    heat = r.cam("kpcacam")
"""

import numpy as np
import torch
from sklearn.decomposition import KernelPCA

from .base import CamMethod


def kernel_projection(acts: torch.Tensor, kernel: str = "sigmoid",
                      gamma: float | None = None) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): the first kernel principal component of each image."""
    n, c, h, w = acts.shape
    x = torch.nan_to_num(acts.detach().float()).reshape(n, c, h * w).transpose(1, 2).cpu()
    out = []
    for xi in x.numpy():
        xi = xi - xi.mean(axis=0)
        proj = KernelPCA(n_components=1, kernel=kernel, gamma=gamma).fit_transform(xi)
        out.append(np.float32(proj).reshape(h, w))
    return torch.from_numpy(np.stack(out)).to(acts.device, acts.dtype)


class KPCACAM(CamMethod):
    name = "kpcacam"
    title = "KPCA-CAM"
    aliases = ("kpca-cam", "kpca")
    uses_gradients = False
    class_agnostic = True
    in_all = False
    interactive = False

    def cam(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return kernel_projection(acts)
