"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020, arXiv:2008.00299): the activations' first
principal component, M = ReLU( (X - mean X) v1 ), X the HW x C activations.

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["eigencam"])
    heat = r.cam("eigencam", "last")

pytorch-grad-cam takes a full SVD of the (HW x C) matrix, whose U is HW x HW: on a
64x112x112 first-layer map that is a 12544^2 matrix (~25 s, ~3 GB). The projection only needs
the first right singular vector. Small problems take it from a dense ``eigh`` of the C x C
channel covariance (or the HW x HW Gram matrix when C > HW); larger ones (a 512-channel
28x28 map) from a few dozen Lanczos steps that never form either matrix, checked against
their residual, with the dense ``eigh`` as the fallback. The sign of a singular vector is
arbitrary; it is fixed so that the larger-magnitude extreme of the projection is positive (the
sign correction of Seg-Eigen-CAM, eq. 13).
"""

from collections.abc import Callable

import torch

from .base import CamMethod

DENSE_UP_TO = 128  # below this many channels (or positions), a dense eigh is the cheapest
LANCZOS_STEPS = 48
LANCZOS_RESTARTS = 2
LANCZOS_TOL = 1e-9  # residual |A v - lambda v| relative to lambda


def first_component_projection(acts: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): centred activations projected on their first component."""
    n, c, h, w = acts.shape
    x = torch.nan_to_num(acts.float()).reshape(n, c, h * w)
    x = (x - x.mean(dim=2, keepdim=True)).transpose(1, 2)  # N, HW, C, centred
    proj = torch.stack([_project(xi) for xi in x])
    flip = proj.amin(dim=1).abs() > proj.amax(dim=1).abs()
    proj = torch.where(flip[:, None], -proj, proj)
    return proj.reshape(n, h, w).to(acts.dtype)


def _project(x: torch.Tensor) -> torch.Tensor:
    """(HW, C) centred float32 -> (HW,) projection on the first principal component (up to
    sign). The small dense problems form their matrix in float32 (a float64 GEMM of this
    skinny shape is ~3x slower) and solve it in float64; Lanczos runs in float64 throughout."""
    hw, c = x.shape
    if c <= hw:
        if c <= DENSE_UP_TO:
            return x @ torch.linalg.eigh((x.T @ x).double())[1][:, -1].float()
        xd = x.double()
        vec, _ = _top_eigenpair(lambda q: xd.T @ (xd @ q), c, xd, lambda: xd.T @ xd)
        return (xd @ vec).float()
    if hw <= DENSE_UP_TO:
        vals, vecs = torch.linalg.eigh((x @ x.T).double())
        return (vecs[:, -1] * vals[-1].clamp(min=0).sqrt()).float()
    xd = x.double()
    vec, val = _top_eigenpair(lambda q: xd @ (xd.T @ q), hw, xd, lambda: xd @ xd.T)
    return (vec * val.clamp(min=0).sqrt()).float()


def _top_eigenpair(matvec: Callable[[torch.Tensor], torch.Tensor], k: int, like: torch.Tensor,
                   dense: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest eigenpair of a k x k symmetric PSD operator: restarted Lanczos with full
    re-orthogonalisation, checked by its residual; a dense ``eigh`` if it does not converge."""
    gen = torch.Generator(device=like.device).manual_seed(0)
    q = torch.rand(k, generator=gen, dtype=like.dtype, device=like.device) + 0.5
    for _ in range(LANCZOS_RESTARTS):
        vec, val = _lanczos(matvec, q, min(LANCZOS_STEPS, k))
        if val <= 0:
            return vec, val.clamp(min=0)  # constant activations: any direction will do
        if (matvec(vec) - val * vec).norm() <= LANCZOS_TOL * val:
            return vec, val
        q = vec
    vals, vecs = torch.linalg.eigh(dense())
    return vecs[:, -1], vals[-1]


def _lanczos(matvec, q: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top Ritz pair after at most ``steps`` Lanczos steps from ``q``, stopping once the
    residual estimate (beta x last Ritz-vector entry) is below tolerance."""
    basis = q.new_zeros(steps, q.shape[0])
    alpha, beta = q.new_zeros(steps), q.new_zeros(steps)
    q = q / q.norm()
    for j in range(steps):
        basis[j] = q
        w = matvec(q)
        alpha[j] = q @ w
        for _ in range(2):  # full re-orthogonalisation, twice ("twice is enough")
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta[j] = w.norm()
        n = j + 1
        if n == steps or n % 4 == 0 or beta[j] <= 1e-12 * alpha[0].abs():
            t = torch.diag(alpha[:n]) + torch.diag(beta[: n - 1], 1) + torch.diag(beta[: n - 1], -1)
            vals, vecs = torch.linalg.eigh(t)
            if n == steps or beta[j] * vecs[-1, -1].abs() <= 0.1 * LANCZOS_TOL * vals[-1].abs():
                break
        q = w / beta[j]
    vec = basis[:n].T @ vecs[:, -1]
    return vec / vec.norm(), vals[-1]


class EigenCAM(CamMethod):
    name = "eigencam"
    title = "Eigen-CAM"
    uses_gradients = False
    class_agnostic = True

    def cam(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        return first_component_projection(acts)
