"""Score-CAM (Wang et al., CVPR-W 2020, arXiv:1910.01279): each channel weighted by the score
of the input masked with that channel.

    M_c = upsample(A_c) (bilinear, corners aligned), min-max scaled to [0, 1]
    w   = softmax_c( y_t(x ⊙ M_c) ),   M = ReLU( sum_c w_c A_c )

Batched: the C masked copies of an image go through the model ``batch`` at a time (16 on a
CPU, 128 on a GPU; channels-last on a CPU) and every explained class is read off the same
forwards; channels whose mask is all zero (a constant channel) share one forward of a blank
image, and channels with the same scaled mask one forward.

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
    (C, h, w); and the number of forwards run.

    Upsampling is linear, so channels equal after min-max scaling (``a = s b + t``, ``s > 0``)
    have the same scaled mask and share one masked forward; a constant channel (mask 0) shares
    the forward of a blank image."""
    batch = batch or BATCH.get(x.device.type, 16)
    flat = acts.float().reshape(acts.shape[0], -1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    scaled = (flat - lo[:, None]) / (hi - lo + 1e-8)[:, None]
    live = (hi > lo).nonzero().flatten()
    uniq, inverse = torch.unique(scaled[live], dim=0, return_inverse=True)
    cls = torch.as_tensor(classes, device=x.device)
    scores = torch.empty(len(classes), acts.shape[0], device=x.device)
    got = torch.empty(len(classes), len(uniq), device=x.device)
    fmt = torch.channels_last if x.device.type == "cpu" else torch.contiguous_format
    forwards = 0
    with torch.inference_mode():
        if len(live) < acts.shape[0]:  # a constant channel masks the whole image to zero
            scores[:] = class_logits(module(torch.zeros_like(x)))[0, cls][:, None].float()
            forwards += 1
        for s in range(0, len(uniq), batch):
            part = uniq[s:s + batch].reshape(-1, 1, *acts.shape[1:])
            up = F.interpolate(part, size=x.shape[-2:], mode="bilinear", align_corners=True)
            u_lo, u_hi = up.amin(dim=(1, 2, 3), keepdim=True), up.amax(dim=(1, 2, 3), keepdim=True)
            up = (up - u_lo) / (u_hi - u_lo + 1e-8)  # the upsampled mask's own range
            masked = (x * up.to(x.dtype)).contiguous(memory_format=fmt)  # NHWC: oneDNN, faster
            got[:, s:s + batch] = class_logits(module(masked))[:, cls].T.float()
            forwards += 1
    scores[:, live] = got[:, inverse]
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
