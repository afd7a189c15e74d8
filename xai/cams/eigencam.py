"""Eigen-CAM (Muhammad & Yeasin, 2020): the activations' first principal component.

pytorch-grad-cam takes a full SVD of the (HW x C) matrix, whose U is HW x HW: on a
64x112x112 first-layer map that is a 12544^2 matrix (~25 s, ~3 GB). The projection only needs
the first right singular vector, which the C x C channel covariance gives at a fraction of
the cost (or the HW x HW Gram matrix when C > HW). The sign of a singular vector is arbitrary;
it is fixed so that the larger-magnitude extreme of the projection is positive (the sign
correction of Seg-Eigen-CAM, eq. 13).
"""

import torch

from .base import CamMethod


def first_component_projection(acts: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): centred activations projected on their first component."""
    n, c, h, w = acts.shape
    x = torch.nan_to_num(acts.float()).reshape(n, c, h * w).transpose(1, 2)  # N, HW, C
    x = x - x.mean(dim=1, keepdim=True)
    xd = x.double()
    if c <= h * w:
        _, vecs = torch.linalg.eigh(xd.transpose(1, 2) @ xd)  # C x C, ascending eigenvalues
        proj = (xd @ vecs[:, :, -1:]).squeeze(-1)
    else:
        vals, vecs = torch.linalg.eigh(xd @ xd.transpose(1, 2))  # HW x HW
        proj = vecs[:, :, -1] * vals[:, -1:].clamp(min=0).sqrt()
    flip = proj.amin(dim=1).abs() > proj.amax(dim=1).abs()
    proj = torch.where(flip[:, None], -proj, proj)
    return proj.reshape(n, h, w).to(acts.dtype)


class EigenCAM(CamMethod):
    name = "eigencam"
    title = "Eigen-CAM"
    uses_gradients = False
    class_agnostic = True

    def cam(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return first_component_projection(acts)
