"""Which map to believe: one verdict per panel (method x depth), with reasons and uncertainty.

* **Faithful**: region perturbation (Samek et al. 2017) with the protocol the known-answer
  meta-evaluation chose (:mod:`xai.metaeval`): 16-px cells, mean fill, 16 steps, score
  ``LeRF - MoRF`` of the target logit (:mod:`xai.perturbation`). A 90 % bootstrap interval over
  the curve's steps; the panel is faithful when the paired interval of (panel - baseline) lies
  above 0 for each baseline: a random map (2 draws, curves averaged), a smooth random map (a
  random CAM, 3 draws) and a Sobel edge map.
* **Class-sensitive**: the maps for three seeded random classes outside the top 5 (Quantus's
  RandomLogit, Sixt et al. 2020; the median |rho|) have Spearman ``|rho| < 0.5`` with the map
  for the target. Eigen-CAM is class-agnostic (rho = 1). Our choice: random classes even when
  a second object is explained, whose map may rightly share the first object's evidence.
* **Model-sensitive**: the panel's own cascading-randomisation rho (MPRT, Adebayo et al. 2018,
  :mod:`xai.sanity`), judged per panel, never averaged over depths.
* **Stable**: max-sensitivity (Yeh et al. 2019), ``max_j ||Phi(x + d_j) - Phi(x)|| / ||Phi(x)||``
  over ``N_NOISE`` uniform perturbations ``|d|_inf <= NOISE * (max x - min x)``; stable below
  ``STABLE``. Yeh et al. search the ball (Monte Carlo, more samples); we draw 4 in one pass.

The best panel is the most faithful one among the faithful, class-sensitive, stable panels that
do not fail the sanity check ("believe"); when there is none, the highest-scoring panel that
passes those checks and beats the random and smooth random maps but not the edge map is "best
supported" (:mod:`xai.verdict_text`). When its paired interval with the runner-up overlaps 0 it
is "not distinguishable" from it, and the text says so.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .cams import get_method
from .explanation import Explanation
from .faithfulness import random_map, sobel_map
from .models import LoadedModel
from .passes import MapKey, run_pass
from .perturbation import RemovalCurves, bootstrap, removal_curves
from .sanity import SanityReport, spearman
from .targets import ClassTarget
from .verdict_text import describe

PROTOCOL = {"patch": 16, "fill": "mean", "n_steps": 16, "score": "lerf-morf", "readout": "logit"}
BASELINES = ("random", "smooth random", "edges")
N_RANDOM = (2, 3)  # draws of the random and smooth random maps whose curves are averaged
CLASS_RHO, STABLE, NOISE, N_NOISE, N_CONTRAST = 0.5, 0.5, 0.02, 4, 3


VERDICT_HEADERS = ["panel", "verdict", "LeRF − MoRF [90 % CI] ↑",
                   "beats random / smooth / edges", "class ρ ↓", "sanity ρ ↓",
                   "max-sensitivity ↓", "why"]


@dataclass
class PanelVerdict:
    """Everything said about one panel, and why."""

    method: str
    depth: str
    layer: str
    score: float
    low: float
    high: float
    faithful: bool
    beats: dict[str, bool]
    class_rho: float | None
    class_sensitive: bool
    sanity_rho: float | None
    model_sensitive: bool | None  # None: sanity not run
    max_sensitivity: float
    stable: bool
    best: bool = False
    badge: str = ""
    text: str = ""


@dataclass
class VerdictReport:
    """Verdicts of every panel for one target, the baselines and a one-paragraph summary."""

    model: str
    target: dict
    contrast: dict
    panels: list[PanelVerdict]
    baselines: list[dict]
    summary: str
    protocol: dict = field(default_factory=lambda: dict(PROTOCOL))
    timings: dict[str, float] = field(default_factory=dict)
    forwards: int = 0

    @property
    def best(self) -> PanelVerdict | None:
        return next((p for p in self.panels if p.best), None)

    def to_dict(self) -> dict:
        """JSON-able form (for the manifest)."""
        return {"model": self.model, "target": self.target, "contrast": self.contrast,
                "protocol": self.protocol, "panels": [asdict(p) for p in self.panels],
                "baselines": self.baselines, "summary": self.summary, "forwards": self.forwards,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}

    def rows(self) -> list[list[str]]:
        """The table under :data:`VERDICT_HEADERS` (the CLI's Markdown and the app's table):
        one row per panel by score, then the baselines every panel must beat."""
        f = lambda v: "—" if v is None else f"{v:+.2f}"  # noqa: E731
        rows = [[f"{p.method} @ {p.depth}{' ★' if p.best else ''}", p.badge,
                 f"{p.score:+.2f} [{p.low:+.2f}, {p.high:+.2f}]",
                 " / ".join("yes" if ok else "no" for ok in p.beats.values()), f(p.class_rho),
                 f(p.sanity_rho), f"{p.max_sensitivity:.2f}", p.text]
                for p in sorted(self.panels, key=lambda p: -p.score)]
        rows += [[f"baseline: {b['name']}", "—", f"{b['score']:+.2f} [{b['low']:+.2f}, "
                  f"{b['high']:+.2f}]", "—", "—", "—", "—", "what a map must beat"]
                 for b in self.baselines]
        return rows

    def markdown(self) -> str:
        """:meth:`rows` as a Markdown table, then the summary."""
        lines = ["| " + " | ".join(VERDICT_HEADERS) + " |",
                 "|" + "---|" * len(VERDICT_HEADERS)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        return "\n".join(lines) + "\n\n" + self.summary


def contrast_classes(result: Explanation, target: int, seed: int = 0) -> list[int]:
    """``N_CONTRAST`` seeded random classes outside the top 5 and the explained targets (one
    random class can be a near neighbour: espresso vs teapot)."""
    top = {p.index for p in result.predictions[:5]} | {t.index for t in result.targets} | {target}
    pool = [i for i in range(len(result.labels)) if i not in top]
    picks = np.random.default_rng(seed).choice(len(pool), N_CONTRAST, replace=False)
    return [pool[int(i)] for i in picks]


def _maps_for(model: LoadedModel, result: Explanation, x: torch.Tensor, target: int
              ) -> dict[tuple[str, str, int], torch.Tensor]:
    """Every (method, depth, image) map of ``x`` (N, 3, H, W) for ``target``, one pass."""
    layers = [result.layer(d) for d in result.depths]
    methods = [get_method(m) for m in result.methods]
    with torch.inference_mode(False):
        run = run_pass(model, x, layers, methods, [ClassTarget(target)])
    return {(m.name, d, i): run.maps[MapKey(m.name, result.layer(d).name, i,
                                            None if m.class_agnostic else target)]
            for m in methods for d in result.depths for i in range(x.shape[0])}


def class_rho(model: LoadedModel, result: Explanation, target: int, contrast: int | list[int]
              ) -> dict[tuple[str, str], float | None]:
    """Spearman rho between each panel's map for ``target`` and for each ``contrast`` class;
    with several, the one of median |rho|."""
    per: dict[tuple[str, str], list[float]] = {}
    for c in [contrast] if isinstance(contrast, int) else contrast:
        maps = _maps_for(model, result, result.input.to(model.device), c)
        for (m, d, _), new in maps.items():
            r = spearman(result.maps[result.key(m, d, target)], new)
            if r is None and float(new.std()) == 0:
                r = 0.0  # the map went flat: it changed
            if r is not None:
                per.setdefault((m, d), []).append(r)
    return {k: (sorted(v, key=abs)[len(v) // 2] if (v := per.get(k)) else None)
            for k in {(m, d) for m in result.methods for d in result.depths}}


def max_sensitivity(model: LoadedModel, result: Explanation, target: int, seed: int = 0,
                    noise: float = NOISE, n: int = N_NOISE) -> dict[tuple[str, str], float]:
    """Yeh et al.'s max-sensitivity of every panel, from ``n`` noisy copies in one pass."""
    x = result.input.to(model.device)
    g = torch.Generator().manual_seed(seed)
    r = noise * float(x.max() - x.min())
    d = (torch.rand((n, *x.shape[1:]), generator=g) * 2 - 1) * r
    maps = _maps_for(model, result, x + d.to(x.device), target)
    out: dict[tuple[str, str], float] = {}
    for (m, dep, _), new in maps.items():
        orig = result.maps[result.key(m, dep, target)].float()
        s = float((new.float() - orig).norm() / orig.norm().clamp_min(1e-8))
        out[(m, dep)] = max(out.get((m, dep), 0.0), s)
    return out


def faithfulness(model: LoadedModel, result: Explanation, target: int, seed: int = 0,
                 n_steps: int = PROTOCOL["n_steps"]) -> tuple[RemovalCurves, list[tuple[str, str]]]:
    """Removal curves of every panel then the three baselines, in one batched call."""
    size = tuple(result.input.shape[-2:])
    keys = [(m, d) for d in result.depths for m in result.methods]
    maps = [torch.from_numpy(result.cam(m, d, target, size=size)) for m, d in keys]
    grid = min((result.layer(d).shape[1:] for d in result.depths), key=lambda s: s[0] * s[1])
    maps += [random_map(size, seed + k) for k in range(N_RANDOM[0])]
    maps += [random_map(size, seed + 100 + k, tuple(grid)) for k in range(N_RANDOM[1])]
    maps.append(sobel_map(result.input))
    p = PROTOCOL
    curves = removal_curves(model, result.input, torch.stack(maps), target, patch=p["patch"],
                            fill=p["fill"], n_steps=n_steps, seed=seed)
    return curves, keys


def judge(model: LoadedModel, result: Explanation, target: int | str | None = None, *,
          sanity: SanityReport | None = None, n_steps: int = PROTOCOL["n_steps"], seed: int = 0,
          progress=None) -> VerdictReport:
    """Faithful / class-sensitive / model-sensitive / stable for every panel; see the module.

    ``sanity``: a :func:`xai.sanity.sanity_check` report of the same result (None: not run).
    ``progress(fraction, text)`` is called before each stage.
    """
    t0 = time.perf_counter()
    step = progress or (lambda f, s: None)
    tgt = result.target_index(target)
    step(0.0, f"faithfulness: removing 16-px cells in {n_steps} steps, batched")
    curves, keys = faithfulness(model, result, tgt, seed, n_steps)
    t1 = time.perf_counter()
    contrast = contrast_classes(result, tgt, seed)
    names = ", ".join(result.labels[c] for c in contrast)
    step(0.6, f"class sensitivity: maps for {names}")
    crho = class_rho(model, result, tgt, contrast)
    step(0.8, "stability: maps under small input noise")
    sens = max_sensitivity(model, result, tgt, seed)
    vals = _pool_baselines(curves.step_values(PROTOCOL["score"], PROTOCOL["readout"]), len(keys))
    w = curves.weights()
    n = len(keys)
    scores = vals @ w
    low, high = bootstrap(vals, w, seed=seed)
    dlow, _ = bootstrap(vals[:n, None] - vals[None, n:], w, seed=seed)  # (n, 3) paired
    panels = []
    for i, (m, d) in enumerate(keys):
        beats = {b: bool(dlow[i, j] > 0) for j, b in enumerate(BASELINES)}
        sr = _sanity_rho(sanity, m, d)
        panels.append(PanelVerdict(
            m, d, result.layer(d).name, float(scores[i]), float(low[i]), float(high[i]),
            all(beats.values()), beats, crho[(m, d)],
            crho[(m, d)] is not None and abs(crho[(m, d)]) < CLASS_RHO, sr,
            None if sr is None else abs(sr) < sanity.threshold, sens[(m, d)],
            sens[(m, d)] < STABLE))
    baselines = [{"name": b, "score": float(scores[n + j]), "low": float(low[n + j]),
                  "high": float(high[n + j])} for j, b in enumerate(BASELINES)]
    summary = describe(panels, vals[:n], w, result.labels[tgt], names, seed)
    step(1.0, "done")
    return VerdictReport(result.model, result.target_prediction(tgt).to_dict(),
                         {"indices": contrast, "label": names}, panels,
                         baselines, summary, dict(PROTOCOL, n_steps=n_steps), timings={
                             "faithfulness": t1 - t0, "total": time.perf_counter() - t0},
                         forwards=curves.forwards)


def _pool_baselines(vals: np.ndarray, n: int) -> np.ndarray:
    """Panels' per-step values, then one row per baseline: the random draws averaged (the
    expected random map, not one lucky draw)."""
    a, b = N_RANDOM
    return np.concatenate([vals[:n], vals[n:n + a].mean(0, keepdims=True),
                           vals[n + a:n + a + b].mean(0, keepdims=True), vals[n + a + b:]])


def _sanity_rho(report: SanityReport | None, method: str, depth: str) -> float | None:
    if report is None or method not in report.verdicts:
        return None
    return report.verdicts[method]["panels"].get(depth, {}).get("rho")
