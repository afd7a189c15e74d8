"""Score-CAM (Wang et al., CVPR-W 2020, arXiv:1910.01279): each channel weighted by the score
of the input masked with that channel.

    M_c = upsample(A_c) (bilinear, corners aligned), min-max scaled to [0, 1]
    w   = softmax_c( y_t(x ⊙ M_c) ),   M = ReLU( sum_c w_c A_c )

Batched: the C masked copies of an image go through the model ``batch`` at a time (16 on a
CPU, 128 on a GPU) and every explained class is read off the same forwards; channels whose
mask is all zero (a constant channel) share one forward of a blank image.

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["scorecam"], depths=["last"])
    heat = r.cam("scorecam")
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models import class_logits
from .base import CamMethod

BATCH = {"cpu": 16, "cuda": 128}  # per device type: large CPU batches are memory-bound


def masked_scores(module: torch.nn.Module, x: torch.Tensor, acts: torch.Tensor,
                  classes: list[int], batch: int | None = None) -> tuple[torch.Tensor, int]:
    """(len(classes), C) logits of ``x`` (1, 3, H, W) masked by each channel of ``acts``
    (C, h, w); and the number of forwards run."""
    batch = batch or BATCH.get(x.device.type, 16)
    up = F.interpolate(acts[None].float(), size=x.shape[-2:], mode="bilinear",
                       align_corners=True)[0]
    flat = up.reshape(up.shape[0], -1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    up = (up - lo[:, None, None]) / (hi - lo + 1e-8)[:, None, None]
    live = (hi > lo).nonzero().flatten()
    cls = torch.as_tensor(classes, device=x.device)
    scores = torch.empty(len(classes), up.shape[0], device=x.device)
    forwards = 0
    with torch.inference_mode():
        if len(live) < up.shape[0]:  # a constant channel masks the whole image to zero
            scores[:] = class_logits(module(torch.zeros_like(x)))[0, cls][:, None].float()
            forwards += 1
        for s in range(0, len(live), batch):
            idx = live[s:s + batch]
            out = class_logits(module(x * up[idx, None].to(x.dtype)))
            scores[:, idx] = out[:, cls].T.float()
            forwards += 1
    return scores, forwards


class ScoreCAM(CamMethod):
    name = "scorecam"
    title = "Score-CAM"
    aliases = ("score-cam",)
    uses_gradients = False
    perturbation = True
    in_all = False
    interactive = False

    def layer_maps(self, module, x, info, acts, targets, logits, passes) -> dict:
        """{(image, class): raw (h, w) map} for one layer."""
        out = {}
        for i in range(x.shape[0]):
            classes = list(dict.fromkeys(int(t[i]) for t in targets))
            scores, forwards = masked_scores(module, x[i:i + 1], acts[i], classes)
            passes["masked_forward"] = passes.get("masked_forward", 0) + forwards
            w = scores.softmax(dim=1).to(acts.dtype)
            for c, m in zip(classes, torch.einsum("kc,chw->khw", w, acts[i])):
                out[(i, c)] = m
        return out
