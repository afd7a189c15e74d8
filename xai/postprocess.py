"""Map post-processing: from a method's raw (signed) map to the [0, 1] map a gallery shows.

``raw`` maps are what a method computes (signed, unscaled, at feature-map size);
:func:`scale_maps` ReLUs and min-max scales them as pytorch-grad-cam's ``scale_cam_image``;
:func:`resize_map` takes a map to image size.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .cams import CamMethod

MATMUL_RESIZE_UP_TO = 32  # maps up to 32x32 are enlarged by matrix products


def normalise(cams: torch.Tensor) -> torch.Tensor:
    """Per map: subtract the min, divide by (max + 1e-7), as pytorch-grad-cam's scale_cam_image."""
    flat = cams.reshape(cams.shape[0], -1)
    lo, hi = torch.aminmax(flat, dim=1, keepdim=True)  # max(x - min) is max - min
    return ((flat - lo) / (hi - lo + 1e-7)).reshape(cams.shape)


def raw_layer_maps(methods: list[CamMethod], acts: torch.Tensor,
                   grads: torch.Tensor | None) -> torch.Tensor:
    """(K, N, H, W): each method's raw map at one layer, before ReLU and scaling.

    Methods that are a weighted channel sum (those keeping :meth:`CamMethod.cam`) share one
    einsum: fewer, larger ops than one chain per method, which is what small maps cost on a CPU.
    """
    weighted = [m for m in methods if type(m).cam is CamMethod.cam]
    raw: dict[str, torch.Tensor] = {}
    if weighted:
        w = torch.stack([m.weights(acts, grads) for m in weighted])  # K, N, C
        raw.update(zip([m.name for m in weighted], torch.einsum("knc,nchw->knhw", w, acts)))
    for m in methods:
        if m.name not in raw:
            raw[m.name] = m.cam(acts, grads)
    return torch.stack([raw[m.name] for m in methods])


def scale_maps(raw: torch.Tensor) -> torch.Tensor:
    """(K, N, H, W) raw maps ReLU'd and min-max scaled to [0, 1] per map, float32 on the CPU
    (``raw`` is not changed)."""
    k, n, h, w = raw.shape
    scaled = normalise(raw.clamp(min=0).reshape(k * n, h, w))
    return scaled.reshape(k, n, h, w).float().cpu()


def layer_maps(methods: list[CamMethod], acts: torch.Tensor,
               grads: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Each method's (N, H, W) map at one layer, ReLU'd and scaled to [0, 1] (float32, CPU)."""
    scaled = scale_maps(raw_layer_maps(methods, acts, grads))
    return {m.name: scaled[j] for j, m in enumerate(methods)}


def interpolate_map(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of one (h, w) map to ``size`` = (h, w), values unscaled (float32).

    The same arithmetic as ``F.interpolate(mode="bilinear", align_corners=False)``; a small map
    enlarged is two matrix products with cached interpolation matrices instead, 2-3x faster
    than ``interpolate`` on one channel (7x7 -> 300x451: ~80 us instead of ~240 us)."""
    cam = cam.float()
    h, w = cam.shape[-2:]
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return cam.clone()
    if max(h, w) <= MATMUL_RESIZE_UP_TO and out_h >= h and out_w >= w:
        return lerp_matrix(h, out_h, cam.device) @ cam @ lerp_matrix(w, out_w, cam.device).T
    return F.interpolate(cam[None, None], size=(out_h, out_w), mode="bilinear",
                         align_corners=False)[0, 0]


def resize_map(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a [0, 1] map to (h, w), then min-max to [0, 1] again (float32, CPU)."""
    cam = interpolate_map(cam, size)
    # as normalise, in fewer passes (each one wakes the intra-op threads on a large map); no
    # ReLU: interpolating a map >= 0 with weights >= 0 gives a map >= 0
    lo, hi = torch.aminmax(cam)
    return cam.sub_(lo).div_(hi - lo + 1e-7).cpu()


@functools.lru_cache(maxsize=64)
def lerp_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D linear interpolation with half-pixel centres, as
    ``upsample_bilinear2d`` computes them (source index clamped at 0, last index repeated)."""
    src = ((torch.arange(n_out, dtype=torch.float32) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.long().clamp(max=n_in - 1)
    lam = (src - i0).clamp(0, 1)
    rows = torch.arange(n_out)
    mat = torch.zeros(n_out, n_in)
    mat.index_put_((rows, i0), 1 - lam, accumulate=True)
    mat.index_put_((rows, (i0 + 1).clamp(max=n_in - 1)), lam, accumulate=True)
    return mat.to(device)
