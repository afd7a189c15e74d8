"""The gradients the shared pass hands to the methods, by kind (see ``CamMethod.gradient``).

``"target"``: d y_c / d A, one backward per target rank, as always. ``"finer"``: d S / d A of
Finer-CAM's contrast score; when both are wanted, their two cotangents go through ONE batched
vector-Jacobian product (``is_grads_batched``), so the graph is walked once. ``"shapley"``:
d y_c / d A - 1/2 H A, the target gradient taken with ``create_graph`` and one Hessian-vector
product per layer (counted in ``passes["hvp"]``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .cams.finercam import contrast_cotangent


def needed_kinds(methods: Sequence) -> set[str]:
    """The gradient kinds ``methods`` read."""
    return {m.gradient for m in methods}


def forward_context(methods: Sequence) -> contextlib.AbstractContextManager:
    """What the shared forward runs under: the math attention kernel when a method needs a
    second derivative (the fused CPU/flash kernels have no double backward)."""
    return sdpa_kernel(SDPBackend.MATH) if "shapley" in needed_kinds(methods) \
        else contextlib.nullcontext()


def target_gradients(logits: torch.Tensor, tensors: list[torch.Tensor], classes: list[int],
                     kinds: set[str], retain: bool) -> tuple[dict[str, list], dict[str, int]]:
    """Per kind, one gradient (or None) per tensor in ``tensors``; and extra pass counts."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    cls = torch.as_tensor(classes, device=logits.device)
    if kinds <= {"target"}:  # the mission's four: exactly one plain backward
        score = logits[rows, cls].sum()
        return {"target": list(torch.autograd.grad(score, tensors, allow_unused=True,
                                                   retain_graph=retain))}, {}
    out: dict[str, list] = {}
    extra: dict[str, int] = {}
    if "shapley" in kinds:
        score = logits[rows, cls].sum()
        grads = torch.autograd.grad(score, tensors, allow_unused=True, retain_graph=True,
                                    create_graph=True)
        out["target"] = [None if g is None else g.detach() for g in grads]
        out["shapley"] = _shapley(tensors, grads)
        extra["hvp"] = len(tensors)
        if "finer" in kinds:
            cot = contrast_cotangent(logits, classes).to(logits.dtype)
            out["finer"] = list(torch.autograd.grad(logits, tensors, cot, allow_unused=True,
                                                    retain_graph=retain))
            extra["backward"] = 1
        return out, extra
    cot = contrast_cotangent(logits, classes).to(logits.dtype)
    if "target" not in kinds:
        return {"finer": list(torch.autograd.grad(logits, tensors, cot, allow_unused=True,
                                                  retain_graph=retain))}, {"contrast": 1}
    one_hot = torch.zeros_like(logits)
    one_hot[rows, cls] = 1
    both = torch.autograd.grad(logits, tensors, torch.stack([one_hot, cot]), allow_unused=True,
                               retain_graph=retain, is_grads_batched=True)
    out["target"] = [None if g is None else g[0] for g in both]
    out["finer"] = [None if g is None else g[1] for g in both]
    return out, {"contrast": 1}


def _shapley(tensors: list[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> list:
    """g - 1/2 H A per layer, H A = d<g, A>/dA with A held as the vector."""
    out = []
    for t, g in zip(tensors, grads):
        if g is None:
            out.append(None)
            continue
        hvp = None
        if g.requires_grad:
            (hvp,) = torch.autograd.grad(g, t, t.detach(), retain_graph=True, allow_unused=True)
        out.append(g.detach() if hvp is None else (g - 0.5 * hvp).detach())
    return out
