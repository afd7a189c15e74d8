"""Finer-CAM (Zhang et al., CVPR 2025, arXiv:2501.11309): "why class c and not its closest
rivals". Grad-CAM of the contrast score

    S = sum_k p_k (y_c - alpha y_k) / (sum_k p_k + 1e-9),   p = softmax(y), alpha = 1,

over the K = 3 classes whose logits are nearest to y_c (pytorch-grad-cam's FinerWeightedTarget,
whose softmax weights are differentiated too). dS/dA comes from the same backward as the target
gradient: both cotangents go through one batched vector-Jacobian product.

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["finercam"])
    heat = r.cam("finercam", "last")
"""

import torch

from .gradcam import GradCAM

COMPARISONS = 3
ALPHA = 1.0


def contrast_classes(logits: torch.Tensor, classes: list[int],
                     k: int = COMPARISONS) -> torch.Tensor:
    """(N, k) for each image: the k classes whose logits are nearest its target's (stable
    order, the target itself excluded as pytorch-grad-cam's ``sorted_indices[:, 1:k+1]``)."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    own = logits[rows, torch.as_tensor(classes, device=logits.device)]
    order = (logits - own[:, None]).abs().argsort(dim=1, stable=True)
    return order[:, 1:k + 1]


def contrast_cotangent(logits: torch.Tensor, classes: list[int],
                       alpha: float = ALPHA) -> torch.Tensor:
    """(N, K) d S / d logits of Finer-CAM's score, per image, in closed form:
    with P = sum p_k, Q = sum p_k d_k, d_k = y_c - alpha y_k, D = P + 1e-9,
    dQ/dy_j = [j in K] p_j (d_j - alpha) - p_j Q + [j = c] P,  dP/dy_j = [j in K] p_j - p_j P,
    dS/dy = (dQ D - Q dP) / D^2."""
    y = logits.detach().float()
    rivals = contrast_classes(y, classes)
    main = torch.as_tensor(classes, device=y.device)[:, None]
    p = y.softmax(dim=1)
    pk = p.gather(1, rivals)
    dk = y.gather(1, main) - alpha * y.gather(1, rivals)
    big_p, q = pk.sum(dim=1, keepdim=True), (pk * dk).sum(dim=1, keepdim=True)
    dq = (-p * q).scatter_add(1, rivals, pk * (dk - alpha)).scatter_add(1, main, big_p)
    dp = (-p * big_p).scatter_add(1, rivals, pk)
    den = big_p + 1e-9
    return (dq * den - q * dp) / den**2


class FinerCAM(GradCAM):
    """Grad-CAM's weights (the gradients' spatial mean) on its own gradient."""

    name = "finercam"
    title = "Finer-CAM"
    aliases = ("finer-cam", "finer")
    gradient = "finer"
    in_all = False

