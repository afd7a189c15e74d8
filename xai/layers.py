"""Map a relative depth (first/middle/last, a fraction, ``conv:N`` or a module name) to a module.

One traced eval forward records, in execution order, every module's output shape and every
``Conv2d`` that runs. Two depth modes build on it:

* ``stages`` (default): stage outputs of the feature extractor, one per spatial reduction level
  (timm's ``feature_info`` where the model has it); ``last`` is the final feature map that feeds
  global pooling. Transformers (ViT/DeiT) use their blocks, token outputs reshaped to a grid.
* ``convs``: the N-th ``Conv2d`` that actually runs in an eval forward (the reference study's
  convention); first/middle/last are conv 1, conv ceil(N/2) and conv N.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from .errors import LayerError
from .models import LoadedModel
from .stages import find_stages
from .trace import Event, Trace, record

MODES = ("stages", "convs")
NAMED_DEPTHS = ("first", "middle", "last")


@dataclass(frozen=True)
class LayerInfo:
    """A resolved layer: module name, kind, position and feature-map size."""

    name: str
    kind: str
    mode: str
    index: int
    total: int
    shape: tuple[int, int, int]  # channels, height, width of the map a CAM is computed on
    fmt: str = "NCHW"  # how the module's output is laid out: NCHW, NHWC or NLC (tokens)
    prefix_tokens: int = 0
    note: str = ""

    @property
    def position(self) -> str:
        """``"stage 5/5"`` or ``"conv 155/155"`` (``"module"`` for explicit names)."""
        unit = {"stages": "stage", "convs": "conv"}.get(self.mode, "module")
        return f"{unit} {self.index}/{self.total}" if self.index else unit

    @property
    def size(self) -> str:
        c, h, w = self.shape
        return f"{c}×{h}×{w}"

    @property
    def description(self) -> str:
        text = f"{self.name} ({self.kind}), {self.position}, {self.size}"
        return f"{text}; {self.note}" if self.note else text

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "mode": self.mode, "index": self.index,
                "total": self.total, "shape": list(self.shape), "format": self.fmt,
                "position": self.position, "description": self.description, "note": self.note}


def trace(model: LoadedModel) -> Trace:
    """The recorded forward of ``model`` with its stages and convs (once per model, cached;
    recorded under the model's lock, so concurrent requests never see it half-built)."""
    cached = model.layer_trace
    if cached is not None:
        return cached
    with model.lock:
        if model.layer_trace is None:
            tr = record(model)
            tr.convs = _conv_infos(tr)
            events, tr.isotropic = find_stages(model.module, tr)
            tr.stages = _stage_infos(tr, events)
            model.layer_trace = tr
    return model.layer_trace


def _info(ev: Event, mode: str, index: int, total: int, note: str = "") -> LayerInfo:
    grid = ev.grid
    return LayerInfo(ev.name, ev.kind, mode, index, total, grid.shape, fmt=grid.fmt,
                     prefix_tokens=grid.prefix_tokens, note=note)


def _conv_infos(tr: Trace) -> list[LayerInfo]:
    n = len(tr.conv_events)
    final = next((e for e in reversed(tr.events) if e.grid is not None
                  and e.kind not in ("AdaptiveAvgPool2d", "Identity")), None)
    infos = []
    for i, ev in enumerate(tr.conv_events, 1):
        note = ""
        if i == n and final is not None and ev.grid is not None \
                and ev.grid.shape[0] != final.grid.shape[0]:
            parent = ev.name.rsplit(".", 2)[0] if ev.name.count(".") >= 2 else \
                ev.name.rsplit(".", 1)[0]
            note = (f"the last conv to run is a single branch of {parent} "
                    f"({ev.grid.shape[0]} channels), not the full feature map that feeds pooling")
        if ev.grid is None:  # a conv whose output has no 2-D grid (1x1 output): its raw shape
            c = ev.shape[1] if len(ev.shape) > 1 else 0
            h, w = (ev.shape[2], ev.shape[3]) if len(ev.shape) == 4 else (0, 0)
            infos.append(LayerInfo(ev.name, ev.kind, "convs", i, n, (c, h, w), note=note))
        else:
            infos.append(_info(ev, "convs", i, n, note))
    return infos


def _stage_infos(tr: Trace, events: list[Event]) -> list[LayerInfo]:
    n = len(events)
    infos = [_info(ev, "stages", i, n) for i, ev in enumerate(events, 1)]
    if tr.isotropic and events:
        last = events[-1]
        parent = last.name.rsplit(".", 1)[0]
        later = [e for e in tr.events if e.name.rsplit(".", 1)[0] == parent
                 and tr.order[e.name] > tr.order[last.name]
                 and e.name.rsplit(".", 1)[-1][-1:].isdigit()]
        if later:
            infos[-1] = _info(last, "stages", n, n, note=(
                f"the {len(later)} block(s) after it feed only the class token, so their "
                f"patch positions carry no gradient"))
    return infos


def conv_layers(model: LoadedModel) -> list[LayerInfo]:
    """All ``Conv2d`` layers that run in an eval forward, in execution order."""
    return list(trace(model).convs)


def stage_layers(model: LoadedModel) -> list[LayerInfo]:
    """The stage outputs (or transformer blocks) that ``stages`` mode chooses from."""
    return list(trace(model).stages)


_CONV_RE = re.compile(r"^conv:(-?\d{1,9})$")  # longer: no such conv (int() stops at 4300)


def resolve_layer(model: LoadedModel, depth: str | float, mode: str = "stages") -> LayerInfo:
    """Resolve ``depth``: first/middle/last, a fraction in [0, 1], ``conv:N`` or a module name."""
    if mode not in MODES:
        raise LayerError(f"unknown depth mode {mode!r}; use one of {', '.join(MODES)}")
    text = str(depth).strip()
    if not text:
        raise LayerError("empty depth; use first, middle, last, a fraction in [0, 1], conv:N "
                         "or a module name")
    tr = trace(model)
    match = _CONV_RE.match(text)
    if match:
        return _pick(tr.convs, int(match.group(1)), "conv", text)
    candidates = tr.convs if mode == "convs" else tr.stages
    if not candidates:
        raise LayerError(f"model {model.name!r} has no {mode} to choose from")
    n = len(candidates)
    if text in NAMED_DEPTHS:
        index = {"first": 1, "middle": math.ceil(n / 2), "last": n}[text]
        return candidates[index - 1]
    fraction = _as_fraction(text)
    if fraction is not None:
        return candidates[round(fraction * (n - 1))]
    return _by_name(model, tr, text)


def _as_fraction(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise LayerError(f"depth fraction {text} is outside [0, 1]")
    return value


def _pick(items: list[LayerInfo], index: int, unit: str, text: str) -> LayerInfo:
    if not 1 <= index <= len(items):
        raise LayerError(f"{text!r}: this model runs {len(items)} {unit} layers; "
                         f"use 1..{len(items)}")
    return items[index - 1]


def _by_name(model: LoadedModel, tr: Trace, name: str) -> LayerInfo:
    for info in tr.stages + tr.convs:
        if info.name == name:
            return info
    ev = tr.by_name.get(name)
    if ev is None:
        try:
            model.module.get_submodule(name)
        except AttributeError:
            raise LayerError(f"{name!r} is not a depth (first, middle, last, a fraction in [0, 1], "
                             f"conv:N) nor a module of {model.name!r}") from None
        raise LayerError(f"module {name!r} does not run in an eval forward of {model.name!r}")
    if ev.calls != 1:
        raise LayerError(f"module {name!r} runs {ev.calls} times per forward; choose its parent")
    if ev.grid is None:
        raise LayerError(f"module {name!r} outputs shape {tuple(ev.shape)}, not a spatial "
                         f"feature map")
    return _info(ev, "module", 0, 0)


def to_nchw(t: torch.Tensor, layer: LayerInfo) -> torch.Tensor:
    """Bring a layer's raw output (NCHW, NHWC or tokens) to an NCHW feature map."""
    if layer.fmt == "NHWC":
        return t.permute(0, 3, 1, 2)
    if layer.fmt == "NLC":
        c, gh, gw = layer.shape
        return t[:, layer.prefix_tokens:, :].reshape(t.shape[0], gh, gw, c).permute(0, 3, 1, 2)
    return t
