"""Ablation-CAM (Desai & Ramaswamy, WACV 2020): each channel weighted by the relative drop of
the score when it is ablated.

    w_c = (y - y_{A_c := v}) / y,   M = ReLU( sum_c w_c A_c )
    v = 0 where the layer's minimum is 0 (the paper), else min - 1e7 (pytorch-grad-cam)

Batched: ``batch`` copies of an image (16 on a CPU, 128 on a GPU) run at once, a forward hook
on the layer ablating one channel in each; every explained class is read off the same
forwards.

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["ablationcam"], depths=["last"])
    heat = r.cam("ablationcam")
"""

from __future__ import annotations

import torch

from ..models import class_logits
from ..trace import output_tensor, replace_output
from .base import CamMethod

BATCH = {"cpu": 16, "cuda": 128}  # per device type: large CPU batches are memory-bound
ABLATION_VALUE = 1e7


def ablated_scores(module: torch.nn.Module, x: torch.Tensor, layer: str, fmt: str, channels: int,
                   classes: list[int], batch: int | None = None) -> tuple[torch.Tensor, int]:
    """(len(classes), C) logits of ``x`` (1, 3, H, W) with each channel of ``layer`` ablated;
    and the number of forwards run."""
    batch = batch or BATCH.get(x.device.type, 16)
    chosen: list[torch.Tensor] = []

    def hook(mod, args, out):
        index, t = output_tensor(out, len(chosen[0]))
        low = t.min()
        value = torch.zeros_like(low) if low == 0 else low - ABLATION_VALUE
        mask = torch.nn.functional.one_hot(chosen[0], channels).bool()
        shape = [len(chosen[0])] + [1] * (t.dim() - 1)
        shape[1 if fmt == "NCHW" else -1] = channels
        return replace_output(out, index, torch.where(mask.reshape(shape), value, t))

    cls = torch.as_tensor(classes, device=x.device)
    scores = torch.empty(len(classes), channels, device=x.device)
    handle = module.get_submodule(layer).register_forward_hook(hook)
    forwards = 0
    try:
        with torch.inference_mode():
            for s in range(0, channels, batch):
                idx = torch.arange(s, min(s + batch, channels), device=x.device)
                chosen[:] = [idx]
                out = class_logits(module(x.expand(len(idx), -1, -1, -1)))
                scores[:, idx] = out[:, cls].T.float()
                forwards += 1
    finally:
        handle.remove()
    return scores, forwards


class AblationCAM(CamMethod):
    name = "ablationcam"
    title = "Ablation-CAM"
    aliases = ("ablation-cam",)
    uses_gradients = False
    perturbation = True
    in_all = False
    interactive = False

    def layer_maps(self, module, x, info, acts, targets, logits, passes) -> dict:
        """{(image, class): raw (h, w) map} for one layer."""
        out = {}
        for i in range(x.shape[0]):
            classes = list(dict.fromkeys(int(t[i]) for t in targets))
            scores, forwards = ablated_scores(module, x[i:i + 1], info.name, info.fmt,
                                              acts.shape[1], classes)
            passes["masked_forward"] = passes.get("masked_forward", 0) + forwards
            base = logits[i, classes].float()[:, None]
            w = ((base - scores) / base).to(acts.dtype)
            for c, m in zip(classes, torch.einsum("kc,chw->khw", w, acts[i])):
                out[(i, c)] = m
        return out
