"""The base class of a CAM method: channel weights from activations and gradients."""

from __future__ import annotations

import torch


class CamMethod:
    """A class activation map method working on NCHW activations (and their gradients).

    Subclasses set ``name`` and implement :meth:`weights`; a method that is not a weighted
    channel sum (Eigen-CAM) overrides :meth:`cam` instead. All math is torch, on the
    activations' device.

    ``gradient`` names the gradient the method reads from the shared backward: ``"target"``
    (d score / d activations), ``"finer"`` (of Finer-CAM's contrast score, same backward,
    batched) or ``"shapley"`` (gradient minus half a Hessian-vector product). ``perturbation``
    methods (Score-CAM, Ablation-CAM, FullGrad) run their own batched passes instead.
    ``in_all`` puts the method in :data:`ALL_ONE_PASS` (the cheap set); ``aliases`` are other
    names :func:`get_method` accepts; ``interactive`` methods are offered in the app.
    """

    name: str = ""
    title: str = ""
    aliases: tuple[str, ...] = ()
    uses_gradients: bool = True
    class_agnostic: bool = False
    gradient: str = "target"
    perturbation: bool = False
    in_all: bool = True
    interactive: bool = True  # offered in the app (False: seconds to minutes per map on a CPU)

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """(N, C) channel weights."""
        raise NotImplementedError

    def cam(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        """(N, H, W) raw map, before ReLU and normalisation."""
        w = self.weights(acts, grads)
        return torch.einsum("nc,nchw->nhw", w, acts)
