"""Patch-removal curves: MoRF / LeRF with mean, blur or ROAD fill, in batched forwards.

Region perturbation (Samek et al. 2017, "Evaluating the visualization of what a deep neural
network has learned"): the map is averaged over ``patch`` x ``patch`` cells; cells are removed
in ``n_steps`` equal steps, most relevant first (*MoRF*) or least relevant first (*LeRF*), and
the target's logit ``y_k`` is read after each step (``patch=1``: pixel-wise, as RISE's deletion,
Petsiuk et al. 2018). Removed cells take one of three fills:

* ``mean``: zero in normalised space, the per-channel dataset mean (RISE deletion);
* ``blur``: the same cells of a Gaussian blur of the image (RISE's insertion substrate,
  sigma = ``BLUR_SIGMA``);
* ``road``: noisy linear imputation (ROAD, Rong et al. 2022): each removed pixel is the mean of
  its 4 neighbours, plus Gaussian noise. ROAD solves that linear system exactly with a sparse
  solver; here it is solved approximately, batched on the model's device, by a normalised blur
  start and ``ROAD_ITERS`` Jacobi sweeps (our departure: speed).

Scores from the curves, normalised by the largest change ``max |y_k - y_0|`` seen in any curve
of the call (so they lie in [-1, 1] and the maps of one call share one scale):
``morf = -mean_k y_k`` (deletion, lower curve = better map), ``lerf = mean_k y_k`` and the
symmetric ``lerf-morf = mean_k (y^LeRF_k - y^MoRF_k)`` (Samek's "ABPC", area between the
curves; ROAD's "symmetric" use of both orders). Means use the trapezoid weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import XaiError
from .models import LoadedModel, batched_forward, class_logits, forward_batch_size

FILLS = ("mean", "blur", "road")
ORDERS = ("morf", "lerf")
SCORES = ("morf", "lerf", "lerf-morf")
BLUR_KERNEL, BLUR_SIGMA = 31, 8.0
ROAD_ITERS, ROAD_NOISE = 16, 0.01
MASK_CHUNK = 256  # jobs whose masks are built (and packed for de-duplication) at once


class ProtocolError(XaiError, ValueError):
    """A perturbation setting (patch, fill, steps, order, score) outside what is offered."""


@dataclass
class RemovalCurves:
    """Target logit and probability of M maps after each removal step, per order."""

    fractions: np.ndarray  # (n_steps + 1,)
    logit: dict[str, np.ndarray]  # order -> (M, n_steps + 1)
    prob: dict[str, np.ndarray]  # order -> (M, n_steps + 1)
    forwards: int
    batches: int
    seconds: float

    def step_values(self, score: str = "lerf-morf", readout: str = "logit") -> np.ndarray:
        """(M, n_steps + 1) normalised per-step values whose weighted mean is the score."""
        if score not in SCORES or readout not in ("logit", "prob"):
            raise ProtocolError(f"score must be one of {SCORES}, readout logit or prob")
        c = self.logit if readout == "logit" else self.prob
        ref = next(iter(c.values()))
        span = max(max(float(np.abs(v - ref[0, 0]).max()) for v in c.values()), 1e-6)
        if score == "morf":
            return -c["morf"] / span
        if score == "lerf":
            return c["lerf"] / span
        return (c["lerf"] - c["morf"]) / span

    def weights(self) -> np.ndarray:
        """Trapezoid weights over the fractions (they sum to 1)."""
        dx = np.diff(self.fractions)
        w = np.zeros_like(self.fractions)
        w[1:] += dx / 2
        w[:-1] += dx / 2
        return w / w.sum()

    def scores(self, score: str = "lerf-morf", readout: str = "logit") -> np.ndarray:
        """(M,) area under the normalised curve(s): higher = more faithful."""
        return self.step_values(score, readout) @ self.weights()


def cell_ranks(maps: torch.Tensor, patch: int, seed: int = 0) -> torch.Tensor:
    """(M, H, W) rank of each pixel's cell (0 = most relevant) for (M, H, W) maps.

    A cell's relevance is the map's mean over it; ties go in a seeded random order.
    """
    m, h, w = maps.shape
    cells = F.avg_pool2d(maps.float()[:, None], patch, ceil_mode=True)[:, 0]
    gh, gw = cells.shape[-2:]
    flat = cells.reshape(m, gh * gw)
    perm = torch.randperm(gh * gw, generator=torch.Generator().manual_seed(seed))
    order = perm[torch.argsort(flat[:, perm], dim=1, descending=True, stable=True)]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(gh * gw).expand(m, gh * gw).contiguous())
    grid = ranks.view(m, 1, gh, gw).float()
    return F.interpolate(grid, scale_factor=patch, mode="nearest")[:, 0, :h, :w].long()


def gaussian_blur(x: torch.Tensor, kernel: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA
                  ) -> torch.Tensor:
    """Separable per-channel Gaussian blur of (N, C, H, W), reflect padding."""
    r = torch.arange(kernel, dtype=x.dtype, device=x.device) - (kernel - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = (g / g.sum()).expand(x.shape[1], 1, kernel).contiguous()
    p = kernel // 2
    x = F.conv2d(F.pad(x, (p, p, 0, 0), mode="reflect"), g[:, :, None, :], groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, p, p), mode="reflect"), g[:, :, :, None], groups=x.shape[1])


def road_impute(x: torch.Tensor, removed: torch.Tensor, generator: torch.Generator,
                iters: int = ROAD_ITERS, noise: float = ROAD_NOISE) -> torch.Tensor:
    """Noisy linear imputation of ``removed`` (N, 1, H, W) pixels of ``x`` (N, C, H, W).

    ``v = mean of 4 neighbours`` on removed pixels (Jacobi sweeps from a normalised-blur start),
    then ``+ N(0, noise^2)`` (ROAD, Rong et al. 2022; approximate solve).
    """
    keep = (~removed).to(x.dtype)
    num = gaussian_blur(x * keep, BLUR_KERNEL, BLUR_SIGMA)
    den = gaussian_blur(keep, BLUR_KERNEL, BLUR_SIGMA)
    v = torch.where(removed, num / den.clamp_min(1e-3) * (den > 1e-3), x)
    cross = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]],
                         dtype=x.dtype, device=x.device)
    weight = cross.expand(x.shape[1], 1, 3, 3).contiguous()
    for _ in range(iters):
        avg = F.conv2d(F.pad(v, (1, 1, 1, 1), mode="replicate"), weight, groups=x.shape[1])
        v = torch.where(removed, avg, x)
    eps = torch.randn(v.shape, generator=generator, device="cpu").to(v.device)
    return v + removed * noise * eps


def _forward(model: LoadedModel, batches, target: int) -> tuple[list, list, int]:
    """Target logit and softmax probability for every batch (channels-last copy on the CPU)."""
    logits_out, probs_out, calls = [], [], 0
    with torch.inference_mode(), batched_forward(model) as (module, fmt):
        for xb in batches:
            z = class_logits(module(xb.contiguous(memory_format=fmt))).float()
            logits_out.append(z[:, target].cpu())
            probs_out.append(z.softmax(dim=1)[:, target].cpu())
            calls += 1
    return logits_out, probs_out, calls


def check_protocol(patch: int, fill: str, n_steps: int) -> None:
    """Raise :class:`ProtocolError` for an unusable setting."""
    if fill not in FILLS:
        raise ProtocolError(f"fill must be one of {FILLS}, not {fill!r}")
    if not (1 <= patch <= 64 and 2 <= n_steps <= 256):
        raise ProtocolError("patch must be in 1..64 and n_steps in 2..256")


def removal_curves(model: LoadedModel, x: torch.Tensor, maps: torch.Tensor, target: int, *,
                   patch: int = 16, fill: str = "blur", n_steps: int = 16,
                   orders: tuple[str, ...] = ORDERS, chunk_size: int | None = None,
                   seed: int = 0) -> RemovalCurves:
    """MoRF and/or LeRF curves of ``maps`` (M, H, W) for ``x`` (1, 3, H, W) and ``target``.

    Maps of another size are resized bilinearly. Cells are removed ``ceil(cells / n_steps)`` at
    a time; the untouched and fully removed images are shared by every map and order, and so is
    every step whose removed cells are the same set for several maps (forwarded once).
    ``chunk_size``: images per forward (default :func:`~xai.models.forward_batch_size`).
    """
    check_protocol(patch, fill, n_steps)
    t0 = time.perf_counter()
    device = model.device
    x = x.to(device).float()
    h, w = x.shape[-2:]
    maps = maps.float().cpu()
    maps = maps[None] if maps.dim() == 2 else maps
    if tuple(maps.shape[-2:]) != (h, w):
        maps = F.interpolate(maps[:, None], size=(h, w), mode="bilinear",
                             align_corners=False)[:, 0]
    m = maps.shape[0]
    ranks = cell_ranks(maps, patch, seed).to(device)
    n_cells = int(ranks[0].max()) + 1
    per = math.ceil(n_cells / n_steps)
    counts = [min(k * per, n_cells) for k in range(n_steps + 1)]
    gen = torch.Generator().manual_seed(seed)
    substrate = gaussian_blur(x, BLUR_KERNEL, BLUR_SIGMA) if fill == "blur" else None
    jobs = [(o, i, k) for o in orders for i in range(m) for k in range(1, n_steps)]

    unique, where = _unique_masks(_removed(ranks, jobs[s:s + MASK_CHUNK], counts, n_cells)
                                  for s in range(0, len(jobs), MASK_CHUNK))
    size = chunk_size or forward_batch_size(model)

    def batches():
        everything = torch.ones(1, 1, h, w, dtype=torch.bool, device=device)
        yield torch.cat([x, _filled(x, everything, fill, substrate, gen)])
        for s in range(0, len(unique), size):
            bits = np.unpackbits(unique[s:s + size], axis=1, count=h * w)
            mask = torch.from_numpy(bits).view(-1, 1, h, w).to(device=device, dtype=torch.bool)
            yield _filled(x.expand(len(mask), -1, -1, -1), mask, fill, substrate, gen)

    logits, probs, calls = _forward(model, batches(), int(target))
    curves = {name: _curves(_spread(vals, where), orders, m, n_steps)
              for name, vals in (("logit", logits), ("prob", probs))}
    return RemovalCurves(np.array(counts, dtype=np.float64) / n_cells, curves["logit"],
                         curves["prob"], 2 + len(unique), calls, time.perf_counter() - t0)


def _removed(ranks: torch.Tensor, part: list, counts: list[int], n_cells: int) -> torch.Tensor:
    """(len(part), 1, H, W) removed pixels of each ``(order, map, step)`` job."""
    device = ranks.device
    idx = torch.tensor([i for _, i, _ in part], device=device)
    thr = torch.tensor([counts[k] if o == "morf" else n_cells - counts[k] for o, _, k in part],
                       device=device)[:, None, None]
    lerf = torch.tensor([o == "lerf" for o, _, _ in part], device=device)[:, None, None]
    return torch.where(lerf, ranks[idx] >= thr, ranks[idx] < thr)[:, None]


def _unique_masks(chunks: Iterable[torch.Tensor]) -> tuple[np.ndarray, torch.Tensor]:
    """The distinct removed-pixel masks of every job, bit-packed (U, ceil(H W / 8)), and each
    job's index among them (masks come in chunks of (n, 1, H, W))."""
    seen: dict[bytes, int] = {}
    unique, where = [], []
    for chunk in chunks:
        for row in np.packbits(chunk.reshape(len(chunk), -1).cpu().numpy(), axis=1):
            key = row.tobytes()
            if key not in seen:
                seen[key] = len(unique)
                unique.append(row)
            where.append(seen[key])
    return np.stack(unique), torch.tensor(where, dtype=torch.long)


def _spread(vals: list, where: torch.Tensor) -> list:
    """Per-batch values of the unique jobs back to every job: [ends, all jobs in order]."""
    inner = torch.cat(vals[1:]) if len(vals) > 1 else torch.zeros(0)
    return [vals[0], inner[where]] if len(where) else [vals[0]]


def _curves(vals: list, orders: tuple[str, ...], m: int, n_steps: int) -> dict:
    """{order: (M, n_steps + 1) curve}: the shared untouched and fully removed values at the
    ends, each map's own steps between."""
    first, last = (float(v) for v in vals[0])
    inner = (torch.cat(vals[1:]).view(len(orders), m, n_steps - 1).numpy()
             if n_steps > 1 else np.zeros((len(orders), m, 0)))
    return {o: np.concatenate([np.full((m, 1), first), inner[j], np.full((m, 1), last)], 1)
            for j, o in enumerate(orders)}


def _filled(x: torch.Tensor, mask: torch.Tensor, fill: str, substrate: torch.Tensor | None,
            gen: torch.Generator) -> torch.Tensor:
    """``x`` with ``mask`` pixels replaced by the fill."""
    if fill == "mean":
        return torch.where(mask, torch.zeros_like(x), x)
    if fill == "blur":
        return torch.where(mask, substrate, x)
    return road_impute(x, mask.expand(x.shape[0], 1, -1, -1), gen)


def bootstrap(values: np.ndarray, weights: np.ndarray, n: int = 1000, seed: int = 0,
              level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the weighted mean over steps of ``values`` (..., K).

    The K steps are resampled with replacement (``n`` times, seeded); returns (low, high) of
    the central ``level`` interval. Our choice: the curve's steps are the unit of resampling,
    so the interval says how much the score hangs on a few steps.
    """
    rng = np.random.default_rng(seed)
    k = values.shape[-1]
    idx = rng.integers(0, k, size=(n, k))
    w = weights[idx]
    means = (values[..., idx] * w).sum(-1) / w.sum(-1)  # (..., n)
    a = (1 - level) / 2
    return np.quantile(means, a, axis=-1), np.quantile(means, 1 - a, axis=-1)
