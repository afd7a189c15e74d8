"""Model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

A copy of the model (the caller's model is never touched) is re-initialised top-down, in a
cascade: first the classifier head (every parameter used after the last stage), then the last
stage, then the one below it, and so on. After each step every method's map is recomputed at
every depth for the same input and the same target class, and compared with the original map by
Spearman rank correlation (rho, average ranks for ties, at the layer's own resolution).

Verdict. A map at a given depth can only depend on the parameters up to that layer (its
activations) and, for gradient methods, above it (its gradients). Once the head and every stage
from the top down to the layer's own stage are random, everything the map is computed from is
random, so a map that explains the model must have changed. Each *panel* (method x depth)
passes when its own |rho| at that step is below ``THRESHOLD = 0.5`` (absolute value, as in
Adebayo et al.'s stricter variant: a map that turned into its own inverse still carries the
original's structure); it is never averaged over depths, so one depth that keeps its map (e.g.
last-layer Grad-CAM++, rho 0.62) fails even when the others pass. A method passes when every
depth does; ``rho_layer`` is its worst |rho|. A rank correlation of 0.5 shares only
a quarter of the rank variance, and sits between what Adebayo et al. report for methods that
fail (guided backprop and similar stay around 0.8-1.0 under cascading randomisation) and for
those that pass (Grad-CAM and plain gradients fall to about 0-0.3). ``rho_head`` (head only)
says whether the map depends on the class at all: Eigen-CAM is class-agnostic and never reads
the head, so its rho after re-initialising the head is 1 by construction, and its maps change
only once the stages that compute the layer are randomised.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .cams import get_method
from .errors import ExplanationError, MethodError
from .explanation import Explanation
from .layers import LayerInfo, stage_layers, trace
from .models import LoadedModel
from .passes import MapKey, run_pass
from .targets import ClassTarget

THRESHOLD = 0.5


def _rankdata(v: torch.Tensor) -> torch.Tensor:
    """Average ranks (1..n) of a flattened tensor, ties sharing their mean rank."""
    v = v.flatten().double()
    sorted_v, order = v.sort()
    _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True,
                                                  return_counts=True)
    ends = counts.cumsum(0).double()
    avg = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(v)
    ranks[order] = avg[inverse]
    return ranks


def spearman(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float | None:
    """Spearman rank correlation of two maps of equal size; None if either is constant."""
    ra, rb = _rankdata(torch.as_tensor(a)), _rankdata(torch.as_tensor(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return None if den == 0 else float((ra @ rb) / den)


def randomisation_units(model: LoadedModel) -> list[tuple[str, list[str]]]:
    """The cascade, top-down: ``[("head", modules), ("stage N: name", modules), ...]``.

    A module with parameters belongs to the first stage whose output completes at or after it
    in the traced forward; modules that complete after the last stage output form the head.
    """
    pos = trace(model).order
    stages = stage_layers(model)
    bounds = [pos[s.name] for s in stages]
    units: list[list[str]] = [[] for _ in range(len(stages) + 1)]  # stage 1..N, head
    for name, mod in model.module.named_modules():
        if not any(True for _ in mod.parameters(recurse=False)):
            continue
        if name not in pos and name:
            continue  # never runs in an eval forward
        units[_stage_of(pos, bounds, name)].append(name)  # the root's parameters: stage 1
    labels = [f"stage {i}: {s.name}" for i, s in enumerate(stages, 1)] + ["head"]
    return [(labels[k], units[k]) for k in range(len(units) - 1, -1, -1)]


def _stage_of(pos: dict[str, int], bounds: list[int], name: str) -> int:
    """0-based stage whose output completes at or after module ``name`` (len(bounds): the
    head); a name that is not traced (the root) counts as first."""
    at = pos.get(name, -1)
    return next((i for i, b in enumerate(bounds) if at <= b), len(bounds))


def _layer_unit(model: LoadedModel, layer: LayerInfo) -> int:
    """Index in :func:`randomisation_units` (0 = head) of the unit that computes ``layer``."""
    pos = trace(model).order
    bounds = [pos[s.name] for s in stage_layers(model)]
    return len(bounds) - _stage_of(pos, bounds, layer.name)


def _reinit(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
    else:
        for p in module.parameters(recurse=False):
            nn.init.normal_(p, std=0.02)
    if hasattr(module, "reset_running_stats"):
        module.reset_running_stats()


@dataclass
class SanityReport:
    """Rank correlations (method -> depth -> one rho per cascade step) and verdicts."""

    model: str
    target: dict
    steps: list[str]
    layer_step: dict[str, int]  # depth -> step at which its own stage is random
    rho: dict[str, dict[str, list[float | None]]]
    verdicts: dict[str, dict]
    threshold: float
    seconds: float

    def to_dict(self) -> dict:
        """JSON-able form (for the manifest)."""
        return {"model": self.model, "target": self.target, "steps": self.steps,
                "layer_step": self.layer_step, "threshold": self.threshold,
                "rank_correlation": self.rho, "verdicts": self.verdicts,
                "seconds": round(self.seconds, 3)}

    def verdict_lines(self) -> list[str]:
        """One Markdown line per method: its verdict, each panel's ρ and verdict, the head's
        ρ and the note (the CLI's report and the app's tab)."""
        lines = []
        for m, v in self.verdicts.items():
            per = "; ".join(f"{d} {fmt_rho(p['rho'])} {p['verdict']}"
                            for d, p in v.get("panels", {}).items())
            lines.append(f"- **{m}: {v['verdict']}** — worst |ρ| own stage "
                         f"{fmt_rho(v['rho_layer'])} ({per or 'no panel'}), mean ρ head only "
                         f"{fmt_rho(v['rho_head'])}. {v['note']}")
        return lines

    def markdown(self) -> str:
        """Verdicts, then rho per method x depth x cascade step."""
        lines = self.verdict_lines()
        lines += ["", "| method | depth | " + " | ".join(self.steps) + " |",
                  "|---|---|" + "---|" * len(self.steps)]
        for m, by_depth in self.rho.items():
            for d, vals in by_depth.items():
                cells = [fmt_rho(r) + ("*" if i == self.layer_step.get(d) else "")
                         for i, r in enumerate(vals)]
                lines.append(f"| {m} | {d} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def fmt_rho(v: float | None) -> str:
    """A correlation to two decimals, or "—" where it was not measured."""
    return "—" if v is None else f"{v:.2f}"


def sanity_check(model: LoadedModel, result: Explanation, target: int | str | None = None, *,
                 methods: Sequence[str] | None = None, depths: Sequence[str] | None = None,
                 max_steps: int | None = None, seed: int = 0,
                 threshold: float = THRESHOLD) -> SanityReport:
    """Cascading randomisation of a copy of ``model``; see the module docstring.

    ``result`` gives the input, target, layers and original maps. By default the cascade runs
    as deep as the shallowest explained layer needs (``max_steps`` caps it).
    """
    if result.input is None:
        raise ExplanationError("the explanation has no model input tensor")
    t0 = time.perf_counter()
    tgt = result.target_index(target)
    method_objs = [get_method(m) for m in (methods or result.methods)]
    for m in method_objs:
        if m.name not in result.methods:
            raise MethodError(f"method {m.name!r} was not computed in this explanation")
    depths = [str(d) for d in (depths or result.depths)]
    layers = {d: result.layer(d) for d in depths}
    units = randomisation_units(model)
    layer_step = {d: _layer_unit(model, info) for d, info in layers.items()}
    n_steps = max(layer_step.values()) + 1
    if max_steps is not None:
        n_steps = max(1, min(n_steps, max_steps))
    original = {(m.name, d): result.maps[result.key(m.name, d, tgt)]
                for m in method_objs for d in depths}
    rho = _cascade(model, result.input, layers, method_objs, tgt, original,
                   [units[k][1] for k in range(n_steps)], seed)
    verdicts = {m.name: _verdict(m, rho[m.name], layer_step, n_steps, threshold)
                for m in method_objs}
    steps = [units[0][0]] + [f"+ {units[k][0]}" for k in range(1, n_steps)]
    return SanityReport(result.model, result.target_prediction(tgt).to_dict(), steps,
                        layer_step, rho, verdicts, threshold, time.perf_counter() - t0)


def _cascade(model: LoadedModel, x: torch.Tensor, layers: dict[str, LayerInfo], methods: list,
             tgt: int, original: dict, steps: list[list[str]], seed: int) -> dict:
    """{method: {depth: [ρ after each step]}}: re-initialise a copy of the model's units step
    by step (top-down) and compare each map with the original (Spearman)."""
    with model.lock:
        module = copy.deepcopy(model.module)
    replica = dataclasses.replace(model, module=module, lock=threading.RLock())
    x = replica.place(x)
    rho: dict = {m.name: {d: [] for d in layers} for m in methods}
    by_name = dict(module.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for names in steps:
            for name in names:
                _reinit(by_name[name])
            with torch.inference_mode(False):
                run = run_pass(replica, x, list(layers.values()), methods, [ClassTarget(tgt)])
            for m in methods:
                for d, info in layers.items():
                    new = run.maps[MapKey(m.name, info.name, 0,
                                          None if m.class_agnostic else tgt)]
                    r = spearman(original[(m.name, d)], new)
                    if r is None and float(original[(m.name, d)].std()) > 0:
                        r = 0.0  # the randomised map went constant: nothing of it is left
                    rho[m.name][d].append(None if r is None else round(r, 4))
    return rho


def _verdict(m, rho: dict[str, list], layer_step: dict[str, int], n_steps: int,
             threshold: float) -> dict:
    """One method's verdict: judged per panel (depth) at the panel's own stage, failing if
    any panel fails, never averaged over depths."""
    depths = list(rho)
    panels = {d: _panel(rho[d], layer_step[d], threshold) for d in depths}
    at_layer = [abs(p["rho"]) for p in panels.values() if p["rho"] is not None]
    head = [v for d in depths if (v := rho[d][0]) is not None]
    top = [v for d in depths if n_steps > 1 and (v := rho[d][1]) is not None]
    worst = max(at_layer) if at_layer else None
    verdict = ("not run" if worst is None else "passes" if worst < threshold else "fails")
    note = ("class-agnostic: does not read the head, so ρ after the head is 1 by "
            "construction" if m.class_agnostic else
            "class-dependent: the head's weights enter through the gradients")
    return {"verdict": verdict, "rho_layer": _round(worst), "panels": panels,
            "failing_depths": [d for d, p in panels.items() if p["verdict"] == "fails"],
            "rho_head": _round(float(np.mean(head)) if head else None),
            "rho_head_and_last_stage": _round(float(np.mean(top)) if top else None),
            "class_agnostic": m.class_agnostic, "note": note}


def _panel(rhos: list[float | None], step: int, threshold: float) -> dict:
    """One panel's verdict: |rho| at the step where its own stage is random, vs threshold."""
    r = rhos[step] if step < len(rhos) else None
    verdict = "not run" if r is None else "passes" if abs(r) < threshold else "fails"
    return {"rho": r, "verdict": verdict}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
