"""The shared pass: one forward and one backward per target rank, every map of every method
at every layer from the same activations and gradients."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .batched_cams import perturbation_maps
from .cams import CamMethod, get_method
from .cams.guided import guided_hooks
from .gradients import forward_context, needed_kinds, target_gradients
from .layers import LayerInfo, to_nchw, trace
from .models import LoadedModel, class_logits, eval_mode
from .postprocess import raw_layer_maps, scale_maps
from .recorder import ActivationRecorder

Target = Callable[[torch.Tensor], list[int]]  # logits -> a class index per image


class MapKey(NamedTuple):
    """A map of a :class:`Pass`: method, module name, image in the batch, class (None for a
    class-agnostic method)."""

    method: str
    layer: str
    image: int
    target: int | None


@dataclass
class Pass:
    """What one :func:`run_pass` computed."""

    logits: torch.Tensor
    targets: list[list[int]]  # per rank, per image: the class explained
    maps: dict[MapKey, torch.Tensor]  # ReLU'd, [0, 1], feature-map size
    raw: dict[MapKey, torch.Tensor]  # the same maps signed and unscaled
    guided: dict[tuple[int, int], torch.Tensor]  # (image, class) -> (3, H, W)
    activations: dict[str, torch.Tensor]  # layer name -> (N, C, H, W) on the CPU, if kept
    timings: dict[str, float]
    passes: dict[str, int]


def run_pass(model: LoadedModel, x: torch.Tensor, layers: Sequence[LayerInfo],
             methods: Sequence[CamMethod], targets: Sequence[Target] = (), *,
             guided: bool = False, keep_activations: bool = False) -> Pass:
    """One forward, one backward per target; every map for every layer and method.

    ``x`` is the preprocessed batch on the model's device; each of ``targets`` (see
    :mod:`xai.targets`) picks a class per image from the logits, and costs one backward.
    No targets: forward only (class-agnostic maps, activations).
    """
    order = trace(model).order
    names = sorted({info.name for info in layers}, key=lambda n: order.get(n, 0))
    info_of = {info.name: info for info in layers}
    grad_methods = [m for m in methods if m.uses_gradients and not m.perturbation]
    if guided and "gradcam" not in {m.name for m in grad_methods}:
        grad_methods.append(get_method("gradcam"))  # guided Grad-CAM multiplies it
    if not targets:
        grad_methods = []
    out = Pass(torch.empty(0), [], {}, {}, {}, {}, {"backward": 0.0},
               {"forward": 0, "backward": 0})
    with eval_mode(model.module):
        rec = ActivationRecorder(model.module, names, x.shape[0],
                                 grad_from=names[0] if grad_methods else None)
        t = time.perf_counter()
        with rec, torch.no_grad(), forward_context(grad_methods):
            out.logits = class_logits(model.module(x))
        out.passes["forward"] += 1
        out.timings["forward"] = time.perf_counter() - t
        logits = out.logits.detach()
        out.targets = [list(map(int, target(logits))) for target in targets]
        acts = {n: to_nchw(rec.outputs[n].detach(), info_of[n]) for n in names}
        if keep_activations:
            out.activations = {n: a.float().cpu() for n, a in acts.items()}
        t = time.perf_counter()
        agnostic = [m for m in methods if not m.uses_gradients and not m.perturbation]
        for n in names if agnostic else []:
            _store(out, agnostic, n, raw_layer_maps(agnostic, acts[n], None), None)
        out.timings["cams"] = time.perf_counter() - t
        if grad_methods:
            _backward(out, rec.outputs, names, info_of, acts, grad_methods)
        rec.outputs.clear()
        out.logits = logits
        _after(out, model.module, x, [info_of[n] for n in names], acts, methods, guided)
    return out


def _after(out: Pass, module: torch.nn.Module, x: torch.Tensor, layers: list[LayerInfo],
           acts: dict[str, torch.Tensor], methods: Sequence[CamMethod], guided: bool) -> None:
    """What runs its own passes after the shared one: Score-/Ablation-CAM and FullGrad
    (batched), then guided backpropagation."""
    if any(m.perturbation for m in methods):
        t = time.perf_counter()
        _perturbation(out, module, x, layers, acts, [m for m in methods if m.perturbation])
        out.timings["perturbation"] = time.perf_counter() - t
    if guided:
        t = time.perf_counter()
        out.guided = guided_pass(module, x, out.targets)
        out.passes["forward"] += 1
        out.passes["backward"] += len(out.targets)
        out.timings["guided"] = time.perf_counter() - t


def _backward(out: Pass, outputs: dict[str, torch.Tensor], names: list[str],
              info_of: dict[str, LayerInfo], acts: dict[str, torch.Tensor],
              methods: list[CamMethod]) -> None:
    """One backward per target rank to the recorded activations, and that rank's maps."""
    tensors = [outputs[n] for n in names]
    kinds = needed_kinds(methods)
    for rank, classes in enumerate(out.targets):
        t = time.perf_counter()
        # gradients by kind: the target's, Finer-CAM's contrast, ShapleyCAM's (xai.gradients)
        by_kind, extra = target_gradients(out.logits, tensors, list(classes), kinds,
                                          rank < len(out.targets) - 1)
        out.passes["backward"] += 1
        for key, count in extra.items():
            out.passes[key] = out.passes.get(key, 0) + count
        out.timings["backward"] += time.perf_counter() - t
        t = time.perf_counter()
        for j, n in enumerate(names):
            for kind, grads in by_kind.items():
                group = [m for m in methods if m.gradient == kind]
                if group:
                    g = torch.zeros_like(outputs[n]) if grads[j] is None else grads[j]
                    g = to_nchw(g, info_of[n])
                    _store(out, group, n, raw_layer_maps(group, acts[n], g), classes)
        out.timings["cams"] += time.perf_counter() - t


def _store(out: Pass, methods: Sequence[CamMethod], layer: str, raw: torch.Tensor,
           classes: list[int] | None) -> None:
    scaled = scale_maps(raw)
    raw = raw.detach().float().cpu()
    for j, m in enumerate(methods):
        for i in range(raw.shape[1]):
            key = MapKey(m.name, layer, i, None if classes is None else int(classes[i]))
            out.maps[key] = scaled[j, i]
            out.raw[key] = raw[j, i]


def _perturbation(out: Pass, module: torch.nn.Module, x: torch.Tensor,
                  layers: list[LayerInfo], acts: dict[str, torch.Tensor],
                  methods: list[CamMethod]) -> None:
    """The methods that run their own batched passes, after the shared one (their raw maps
    are kept unscaled beside the [0, 1] ones)."""
    found = perturbation_maps(module, x, layers, acts, methods, out.targets, out.logits,
                              out.passes)
    for (method, layer, i, c), raw in found.items():
        key = MapKey(method, layer, i, c)
        out.raw[key] = raw.detach().float().cpu()
        out.maps[key] = scale_maps(out.raw[key][None, None])[0, 0]


def guided_pass(module: torch.nn.Module, x: torch.Tensor,
                targets: list[list[int]]) -> dict[tuple[int, int], torch.Tensor]:
    """Guided backpropagation's input gradients: (image, class) -> (3, H, W), one forward and
    one backward per target rank."""
    handles = guided_hooks(module)
    out: dict = {}
    try:
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            logits = class_logits(module(xg))
            rows = torch.arange(x.shape[0], device=logits.device)
            for rank, classes in enumerate(targets):
                score = logits[rows, torch.as_tensor(classes, device=logits.device)].sum()
                (g,) = torch.autograd.grad(score, xg, retain_graph=rank < len(targets) - 1)
                for i, c in enumerate(classes):
                    out[(i, int(c))] = g[i].detach().float().cpu()
    finally:
        for h in handles:
            h.remove()
    return out
