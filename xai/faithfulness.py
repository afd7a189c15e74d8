"""How faithful is each map to the model? Deletion and insertion AUC (RISE, Petsiuk et al. 2018).

Protocol (RISE's ``CausalMetric``): the map is resized to the model input; pixels are ranked
from most to least relevant (ties broken by a seeded random order) and changed in ``n_steps``
equal steps of ``ceil(H*W / n_steps)`` pixels (RISE: 224 steps of 224 pixels at 224x224, i.e.
``n_steps=224``). *Deletion* starts from the image and replaces pixels with zero in normalised
space (the per-channel dataset mean); *insertion* starts from a Gaussian blur of the image
(kernel 11, sigma 5) and puts the original pixels back. The curve is the softmax probability of
the target class; AUC is the trapezoid over the changed fraction in [0, 1]. Lower deletion and
higher insertion are better; ``score = insertion - deletion``.

Every step of every map goes through the model in a few batched forwards (``chunk_size``
images each) under ``torch.inference_mode`` while holding ``model.lock``. Two baselines that
any real explanation must beat: a seeded random map (per pixel, ``random``, and as smooth as a
CAM of the coarsest explained layer, ``random-cam``) and a Sobel edge map of the input.
Optionally pytorch-grad-cam's ROAD (Rong et al. 2022; noisy linear imputation) with the same
batching: ``road = (LeRF - MoRF) / 2`` averaged over percentiles, higher is better.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .engine import Explanation
from .errors import ExplanationError, OptionError
from .models import LoadedModel, batched_forward, class_logits, forward_batch_size

BLUR_KERNEL, BLUR_SIGMA = 11, 5.0
BASELINES = ("random", "random-cam", "sobel")
ROAD_PERCENTILES = (20, 40, 60, 80)  # % of pixels removed, most relevant first


@dataclass
class Curves:
    """Deletion and insertion curves of M maps: probabilities at each changed fraction."""

    fractions: np.ndarray  # (n_steps + 1,)
    deletion: np.ndarray  # (M, n_steps + 1)
    insertion: np.ndarray  # (M, n_steps + 1)
    forwards: int  # images sent through the model
    batches: int  # batched forward calls
    seconds: float

    @property
    def deletion_auc(self) -> np.ndarray:
        return auc(self.deletion, self.fractions)

    @property
    def insertion_auc(self) -> np.ndarray:
        return auc(self.insertion, self.fractions)


def auc(values: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Trapezoid area under ``values`` (..., n) over ``fractions`` (n,) in [0, 1]."""
    v = np.asarray(values, dtype=np.float64)
    dx = np.diff(np.asarray(fractions, dtype=np.float64))
    return ((v[..., 1:] + v[..., :-1]) * 0.5 * dx).sum(axis=-1)


def gaussian_blur(x: torch.Tensor, kernel: int = BLUR_KERNEL, sigma: float = BLUR_SIGMA
                  ) -> torch.Tensor:
    """Per-channel Gaussian blur of (N, C, H, W) (RISE's insertion substrate; zero padding)."""
    r = torch.arange(kernel, dtype=torch.float32, device=x.device) - (kernel - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    k2 = (g[:, None] * g[None, :]).to(x.dtype)
    c = x.shape[1]
    weight = k2.expand(c, 1, kernel, kernel).contiguous()
    return F.conv2d(x, weight, padding=kernel // 2, groups=c)


def random_map(size: tuple[int, int], seed: int = 0,
               grid: tuple[int, int] | None = None) -> torch.Tensor:
    """A seeded uniform random map (H, W) in [0, 1]; with ``grid`` = (h, w), a random map of
    that size upsampled bilinearly (a "random CAM", as smooth as a real one)."""
    g = torch.Generator().manual_seed(seed)
    if grid is None:
        return torch.rand(tuple(size), generator=g)
    small = torch.rand(tuple(grid), generator=g)
    return F.interpolate(small[None, None], size=tuple(size), mode="bilinear",
                         align_corners=False)[0, 0]


def sobel_map(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the channel-mean of a (1, 3, H, W) input, scaled to [0, 1]."""
    gray = x.float().mean(dim=1, keepdim=True).cpu()
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    weight = torch.stack([kx, kx.T])[:, None]
    g = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), weight)
    mag = g.pow(2).sum(dim=1)[0].sqrt()
    return mag / mag.max().clamp_min(1e-12)


def _ranks(maps: torch.Tensor, seed: int) -> torch.Tensor:
    """(M, H*W) rank of each pixel, 0 = most relevant; ties in a seeded random order."""
    m, hw = maps.shape[0], maps[0].numel()
    flat = maps.reshape(m, hw).float()
    perm = torch.randperm(hw, generator=torch.Generator().manual_seed(seed))
    order = perm[torch.argsort(flat[:, perm], dim=1, descending=True, stable=True)]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(hw).expand(m, hw).contiguous())
    return ranks


def _probabilities(model: LoadedModel, batches, target: int) -> tuple[list[torch.Tensor], int]:
    """Target softmax probability for every batch yielded by ``batches`` (a generator).

    On the CPU the batches go through a channels-last copy of the module (about 2x faster
    with oneDNN); the caller's module is never changed.
    """
    out, calls = [], 0
    with torch.inference_mode(), batched_forward(model) as (module, fmt):
        for xb in batches:
            logits = class_logits(module(xb.contiguous(memory_format=fmt))).float()
            out.append(logits.softmax(dim=1)[:, target].cpu())
            calls += 1
    return out, calls


def _at_size(maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(M, h, w) or (h, w) maps as float32 (M, H, W) on the CPU, bilinearly resized."""
    maps = maps.float().cpu()
    if maps.dim() == 2:
        maps = maps[None]
    if tuple(maps.shape[-2:]) != (h, w):
        maps = F.interpolate(maps[:, None], size=(h, w), mode="bilinear",
                             align_corners=False)[:, 0]
    return maps


def perturbation_curves(model: LoadedModel, x: torch.Tensor, maps: torch.Tensor, target: int,
                        *, n_steps: int = 50, chunk_size: int | None = None,
                        blur_kernel: int = BLUR_KERNEL, blur_sigma: float = BLUR_SIGMA,
                        seed: int = 0) -> Curves:
    """Deletion and insertion curves of ``maps`` (M, H, W) for ``x`` (1, 3, H, W) and ``target``.

    Maps of another size are resized bilinearly to the input. The three images shared by all
    maps (the input, the all-mean image, the blurred image) are forwarded once.
    """
    t0 = time.perf_counter()
    device = model.device
    x = x.to(device).float()
    if x.dim() != 4 or x.shape[0] != 1:
        raise OptionError(f"x must be (1, C, H, W), not {tuple(x.shape)}")
    chunk_size = chunk_size or forward_batch_size(model)
    if n_steps < 1 or chunk_size < 1:
        raise OptionError("n_steps and chunk_size must be positive")
    h, w = x.shape[-2:]
    maps = _at_size(maps, h, w)
    m, hw = maps.shape[0], h * w
    step = math.ceil(hw / n_steps)
    counts = torch.tensor([min(k * step, hw) for k in range(n_steps + 1)])
    ranks = _ranks(maps, seed).to(device)
    blurred = gaussian_blur(x, blur_kernel, blur_sigma)
    interior = [(curve, i, k) for curve in (0, 1) for i in range(m) for k in range(1, n_steps)]

    def batches():
        yield torch.cat([x, torch.zeros_like(x), blurred])  # shared end points
        for s in range(0, len(interior), chunk_size):
            jobs = interior[s:s + chunk_size]
            idx = torch.tensor([i for _, i, _ in jobs], device=device)
            thr = counts[[k for _, _, k in jobs]].to(device)[:, None]
            changed = (ranks[idx] < thr).view(len(jobs), 1, h, w)
            ins = torch.tensor([c == 1 for c, _, _ in jobs], device=device).view(-1, 1, 1, 1)
            # deletion: changed pixels -> 0 (the mean); insertion: changed pixels -> original
            start = torch.where(ins, blurred, x)
            fill = torch.where(ins, x, torch.zeros_like(x))
            yield torch.where(changed, fill, start)

    probs, calls = _probabilities(model, batches(), int(target))
    p_orig, p_mean, p_blur = (float(v) for v in probs[0])
    flat = torch.cat(probs[1:]) if len(probs) > 1 else torch.zeros(0)
    inner = flat.view(2, m, n_steps - 1).numpy() if n_steps > 1 else np.zeros((2, m, 0))
    deletion = np.concatenate([np.full((m, 1), p_orig), inner[0], np.full((m, 1), p_mean)], 1)
    insertion = np.concatenate([np.full((m, 1), p_blur), inner[1], np.full((m, 1), p_orig)], 1)
    return Curves(counts.numpy() / hw, deletion, insertion, 3 + len(interior), calls,
                  time.perf_counter() - t0)


def road_scores(model: LoadedModel, x: torch.Tensor, maps: torch.Tensor, target: int, *,
                percentiles: Sequence[int] = ROAD_PERCENTILES, chunk_size: int | None = None,
                seed: int = 0) -> dict[str, np.ndarray]:
    """pytorch-grad-cam's ROAD (noisy linear imputation), with batched forwards.

    For each map: MoRF and LeRF (mean over ``percentiles`` of the change in target probability
    after imputing the most / least relevant pixels) and ``road = (LeRF - MoRF) / 2``. The
    imputation is a sparse solve per image on the CPU: slow (about 0.3-1 s each).
    """
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    h, w = x.shape[-2:]
    maps = _at_size(maps, h, w)
    img = x[0].detach().float().cpu()
    imputer = NoisyLinearImputer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        jobs = [(kind, i, p) for kind in ("morf", "lerf") for i in range(maps.shape[0])
                for p in percentiles]
        imputed = [(RemoveMostRelevantFirst if kind == "morf" else RemoveLeastRelevantFirst)(
            p, imputer)(img, maps[i]) for kind, i, p in jobs]
    device = model.device
    chunk_size = chunk_size or forward_batch_size(model)

    def batches():
        yield x.to(device).float()
        for s in range(0, len(imputed), chunk_size):
            yield torch.stack(imputed[s:s + chunk_size]).to(device)

    probs, _ = _probabilities(model, batches(), int(target))
    base = float(probs[0][0])
    diff = (torch.cat(probs[1:]) - base).view(2, maps.shape[0], len(percentiles)).mean(2)
    morf, lerf = diff[0].numpy(), diff[1].numpy()
    return {"morf": morf, "lerf": lerf, "road": (lerf - morf) / 2}


@dataclass
class FaithfulnessTable:
    """Scores of every panel of one explanation for one target, plus the baselines."""

    model: str
    target: dict
    n_steps: int
    rows: list[dict]  # method, depth, layer, deletion_auc, insertion_auc, score, rank, best
    baselines: list[dict]  # method (random / sobel), deletion_auc, insertion_auc, score
    timings: dict[str, float]
    forwards: int
    batches: int
    protocol: str = field(default="RISE deletion/insertion")

    def to_dict(self) -> dict:
        """JSON-able form (for the manifest)."""
        return {"model": self.model, "target": self.target, "protocol": self.protocol,
                "n_steps": self.n_steps, "rows": self.rows, "baselines": self.baselines,
                "forwards": self.forwards, "batches": self.batches,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}

    def markdown(self) -> str:
        """The table as markdown, ranked, best marked with a star, baselines at the bottom."""
        road = any("road" in r for r in self.rows)
        head = "| rank | method | depth | deletion ↓ | insertion ↑ | ins − del ↑ |"
        head += " ROAD ↑ |" if road else ""
        lines = [head, "|" + "---|" * (6 + road)]
        for r in sorted(self.rows, key=lambda r: r["rank"]) + self.baselines:
            rank = f"{r['rank']}{' ★' if r.get('best') else ''}" if "rank" in r else "baseline"
            line = (f"| {rank} | {r['method']} | {r.get('depth', '—')} | "
                    f"{r['deletion_auc']:.3f} | {r['insertion_auc']:.3f} | {r['score']:+.3f} |")
            if road:
                line += f" {r['road']:+.3f} |" if "road" in r else " — |"
            lines.append(line)
        return "\n".join(lines)


def _entry(i: int, dels, inss, roads: dict | None) -> dict:
    """Map ``i``'s AUCs (and ROAD scores) as a table row's numbers."""
    d = {"deletion_auc": round(float(dels[i]), 4), "insertion_auc": round(float(inss[i]), 4),
         "score": round(float(inss[i] - dels[i]), 4)}
    if roads is not None:
        d.update(road=round(float(roads["road"][i]), 4), road_morf=round(
            float(roads["morf"][i]), 4), road_lerf=round(float(roads["lerf"][i]), 4))
    return d


def score_explanation(model: LoadedModel, result: Explanation, target: int | str | None = None,
                      *, n_steps: int = 50, chunk_size: int | None = None, baselines: bool = True,
                      road: bool = False, road_percentiles: Sequence[int] = ROAD_PERCENTILES,
                      seed: int = 0) -> FaithfulnessTable:
    """Deletion/insertion AUC of every panel (method x depth) of ``result`` for one target.

    ``target``: an explained class (None: the first). Rows are ranked by
    ``score = insertion - deletion``; ``best`` marks rank 1, ``beats_baselines`` a score above
    both baselines. All maps go through :func:`perturbation_curves` together.
    """
    if result.input is None:
        raise ExplanationError("the explanation has no model input tensor")
    t0 = time.perf_counter()
    tgt = result.target_index(target)
    methods = result.panel_methods
    size = tuple(result.input.shape[-2:])
    keys = [(m, d) for d in result.depths for m in methods]
    maps = [torch.from_numpy(result.cam(m, d, tgt, size=size)) for m, d in keys]
    names = []
    if baselines:
        grid = min((result.layer(d).shape[1:] for d in result.depths), key=lambda s: s[0] * s[1])
        maps += [random_map(size, seed), random_map(size, seed, tuple(grid)),
                 sobel_map(result.input)]
        names = list(BASELINES)
    stack = torch.stack(maps)
    curves = perturbation_curves(model, result.input, stack, tgt, n_steps=n_steps,
                                 chunk_size=chunk_size, seed=seed)
    dels, inss = curves.deletion_auc, curves.insertion_auc
    timings = {"curves": curves.seconds}
    roads = None
    if road:
        t = time.perf_counter()
        roads = road_scores(model, result.input, stack, tgt, percentiles=road_percentiles,
                            chunk_size=chunk_size, seed=seed)
        timings["road"] = time.perf_counter() - t

    def entry(i: int) -> dict:
        return _entry(i, dels, inss, roads)

    rows = [{"method": m, "depth": d, "layer": result.layer(d).name, **entry(i)}
            for i, (m, d) in enumerate(keys)]
    base = [{"method": n, **entry(len(keys) + j)} for j, n in enumerate(names)]
    bar = max((b["score"] for b in base), default=-math.inf)
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["score"])
    for r, i in enumerate(order, 1):
        rows[i].update(rank=r, best=r == 1, beats_baselines=rows[i]["score"] > bar)
    timings["total"] = time.perf_counter() - t0
    return FaithfulnessTable(result.model, result.target_prediction(tgt).to_dict(), n_steps,
                             rows, base, timings, curves.forwards, curves.batches)
