"""The base class of a CAM method: channel weights from activations and gradients."""

from __future__ import annotations

import torch


class CamMethod:
    """A class activation map method working on NCHW activations (and their gradients).

    Subclasses set ``name`` and implement :meth:`weights`; a method that is not a weighted
    channel sum (Eigen-CAM) overrides :meth:`cam` instead. All math is torch, on the
    activations' device.
    """

    name: str = ""
    title: str = ""
    uses_gradients: bool = True
    class_agnostic: bool = False

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """(N, C) channel weights."""
        raise NotImplementedError

    def cam(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        """(N, H, W) raw map, before ReLU and normalisation."""
        w = self.weights(acts, grads)
        return torch.einsum("nc,nchw->nhw", w, acts)
