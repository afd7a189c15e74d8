"""Ablation-CAM (Desai & Ramaswamy, WACV 2020): each channel weighted by the relative drop of
the score when it is ablated.

    w_c = (y - y_{A_c := v}) / y,   M = ReLU( sum_c w_c A_c )
    v = 0 where the layer's minimum is 0 (the paper), else min - 1e7 (pytorch-grad-cam)

Batched: ``batch`` copies of an image (16 on a CPU, 128 on a GPU) run at once, a forward hook
on the layer ablating one channel in each; every explained class is read off the same
forwards. The copies share everything before the layer, so that part runs once per batch at
batch 1 and the hook expands the layer's output to the copies (checked on the first batch by
an un-ablated copy, which must give the image's own logits; else every copy runs whole).

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
SHARED_BATCH = 4  # x BATCH when the copies share the part before the layer


def ablated_scores(module: torch.nn.Module, x: torch.Tensor, layer: str, fmt: str, channels: int,
                   classes: list[int], batch: int | None = None,
                   reference: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """(len(classes), C) logits of ``x`` (1, 3, H, W) with each channel of ``layer`` ablated;
    and the number of forwards run.

    With ``reference`` (the un-ablated logits of ``classes``) the network before ``layer`` runs
    once per batch, at batch 1 (every copy shares it), and the copies start at the layer; an
    un-ablated copy in the first batch must give ``reference`` back, else (a model that does
    not broadcast a batch-1 tensor against the copies) every copy runs whole."""
    # sharing the prefix, a batch costs one batch-1 prefix plus the copies' suffix: larger
    batch = batch or BATCH.get(x.device.type, 16) * (SHARED_BATCH if reference is not None else 1)
    state = {"idx": torch.arange(0), "shared": reference is not None, "control": False}

    def hook(mod, args, out):
        idx, control = state["idx"], state["control"]
        n = len(idx) + control
        index, t = output_tensor(out, 1 if state["shared"] else n)
        if state["shared"]:
            t = t.expand(n, *t.shape[1:])
        low = t.min()
        value = torch.zeros_like(low) if low == 0 else low - ABLATION_VALUE
        mask = torch.nn.functional.one_hot(idx, channels).bool()
        if control:
            mask = torch.cat([mask, mask.new_zeros(1, channels)])
        shape = [n] + [1] * (t.dim() - 1)
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
                out = _shared(module, x, idx, cls, state, reference) if state["shared"] else None
                if out is None:
                    state.update(idx=idx, control=False, shared=False)
                    out = class_logits(module(x.expand(len(idx), -1, -1, -1)))
                scores[:, idx] = out[:, cls].T.float()
                forwards += 1
    finally:
        handle.remove()
    return scores, forwards


def _shared(module, x, idx, cls, state, reference) -> torch.Tensor | None:
    """One batch of ablated copies that share the part before the layer (batch 1 there); None
    when the model's output does not hold one row per copy, or, on the first batch, the
    un-ablated copy's logits differ from ``reference``."""
    first = state["control"] = bool(idx[0] == 0)
    state["idx"] = idx
    try:
        out = class_logits(module(x))
    except RuntimeError:  # a shape that does not broadcast
        return None
    if out.shape[0] != len(idx) + first:
        return None
    if first:
        got, ref = out[-1, cls].float(), reference.float().to(out.device)
        if not torch.allclose(got, ref, rtol=1e-3, atol=1e-3 * (1 + float(ref.abs().max()))):
            return None
    return out[:len(idx)]


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
                                              acts.shape[1], classes,
                                              reference=logits[i, classes].detach())
            passes["masked_forward"] = passes.get("masked_forward", 0) + forwards
            base = logits[i, classes].float()[:, None]
            w = ((base - scores) / base).to(acts.dtype)
            for c, m in zip(classes, torch.einsum("kc,chw->khw", w, acts[i])):
                out[(i, c)] = m
        return out
