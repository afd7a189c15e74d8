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

import functools
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from .errors import LayerError
from .models import eval_mode

if TYPE_CHECKING:
    from .models import LoadedModel

MODES = ("stages", "convs")
NAMED_DEPTHS = ("first", "middle", "last")
_SKIP_TYPES = (nn.Identity, nn.Dropout, nn.Dropout2d)


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


@dataclass
class _Event:
    name: str
    kind: str
    shape: tuple[int, ...]
    calls: int = 1
    out: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class Trace:
    """What one eval forward showed: modules in completion order and the convs that ran."""

    input_hw: tuple[int, int]
    events: list[_Event]
    convs: list[LayerInfo]
    stages: list[LayerInfo]
    is_transformer: bool

    @functools.cached_property
    def order(self) -> dict[str, int]:
        """Module name -> its place in completion order."""
        return {e.name: i for i, e in enumerate(self.events)}


def _tokens_grid(module: nn.Module, length: int) -> tuple[int, int, int] | None:
    """(grid_h, grid_w, prefix tokens) for a token sequence of ``length``, if the model says."""
    pe = getattr(module, "patch_embed", None)
    grid = getattr(pe, "grid_size", None)
    if grid is None:  # torchvision ViT
        image_size, patch = getattr(module, "image_size", None), getattr(module, "patch_size", None)
        if image_size and patch:
            grid = (image_size // patch, image_size // patch)
    if grid is None:
        side = int(math.isqrt(length))
        for prefix in range(0, 9):
            side = int(math.isqrt(length - prefix))
            if side * side == length - prefix:
                return side, side, prefix
        return None
    gh, gw = int(grid[0]), int(grid[1])
    prefix = length - gh * gw
    return (gh, gw, prefix) if prefix >= 0 else None


def _nchw_shape(out: torch.Tensor, fmt: str) -> tuple[int, int, int]:
    if fmt == "NHWC":
        return int(out.shape[3]), int(out.shape[1]), int(out.shape[2])
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def trace(model: LoadedModel) -> Trace:
    """Run (once per model, cached) an eval forward that records layers; see module docstring."""
    cached = getattr(model, "_trace", None)
    if cached is not None:
        return cached
    module = model.module
    h, w = model.input_size
    events: dict[str, _Event] = {}
    order: list[str] = []
    conv_order: list[str] = []

    def hook(name: str):
        def fn(mod: nn.Module, args, out) -> None:
            if name in events:
                events[name].calls += 1
                return
            if isinstance(mod, nn.Conv2d):
                conv_order.append(name)
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
            events[name] = _Event(name, type(mod).__name__, shape,
                                  out=out if isinstance(out, torch.Tensor) else None)
            order.append(name)
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in module.named_modules() if n]
    try:
        with eval_mode(module), torch.no_grad():
            module(torch.zeros(1, 3, h, w, device=model.device))
    finally:
        for handle in handles:
            handle.remove()
    evs = [events[n] for n in order]
    nhwc = getattr(module, "output_fmt", "NCHW") == "NHWC"

    convs = []
    n_conv = len(conv_order)
    final = _final_feature_map(module, evs, (h, w), nhwc)
    for i, name in enumerate(conv_order, 1):
        ev = events[name]
        note = ""
        if i == n_conv and final is not None and ev.shape[1] != final.shape[1 if not nhwc else 3]:
            parent = name.rsplit(".", 2)[0] if name.count(".") >= 2 else name.rsplit(".", 1)[0]
            note = (f"the last conv to run is a single branch of {parent} "
                    f"({ev.shape[1]} channels), not the full feature map that feeds pooling")
        convs.append(LayerInfo(name, ev.kind, "convs", i, n_conv, _nchw_shape_safe(ev.out),
                               note=note))

    is_transformer, stages = _transformer_stages(module, evs)
    if not is_transformer:
        stages = _cnn_stages(module, evs, (h, w), nhwc, final)
    for ev in evs:
        ev.out = None  # drop the traced tensors
    result = Trace((h, w), evs, convs, stages, is_transformer)
    model._trace = result
    return result


def _nchw_shape_safe(out: torch.Tensor | None) -> tuple[int, int, int]:
    if out is None or out.dim() != 4:
        return (0, 0, 0)
    return _nchw_shape(out, "NCHW")


def _is_spatial(ev: _Event, nhwc: bool) -> bool:
    if ev.out is None or ev.out.dim() != 4 or ev.calls != 1:
        return False
    _, hh, ww = _nchw_shape(ev.out, "NHWC" if nhwc else "NCHW")
    return hh > 1 and ww > 1


def _final_feature_map(module: nn.Module, evs: list[_Event], hw, nhwc: bool) -> _Event | None:
    """The last spatial map to be computed: the one global pooling reads."""
    spatial = [e for e in evs if _is_spatial(e, nhwc) and not isinstance(
        module.get_submodule(e.name), _SKIP_TYPES)]
    return spatial[-1] if spatial else None


def _cnn_stages(module: nn.Module, evs: list[_Event], hw, nhwc: bool,
                final: _Event | None) -> list[LayerInfo]:
    fmt = "NHWC" if nhwc else "NCHW"
    by_name = {e.name: e for e in evs}
    chosen: list[_Event] = []
    feature_info = getattr(module, "feature_info", None)
    names = []
    if feature_info is not None:
        try:
            names = [f["module"] for f in feature_info]
        except (TypeError, KeyError):
            names = []
    if names and all(n in by_name and by_name[n].out is not None for n in names):
        chosen = [by_name[n] for n in names]
        last = chosen[-1]
        if final is not None and final is not last and final.out is not last.out:
            if evs.index(final) > evs.index(last):
                if _level(final, hw, fmt) == _level(last, hw, fmt):
                    chosen[-1] = final
                else:
                    chosen.append(final)
    else:
        levels: dict[int, _Event] = {}
        for ev in evs:
            if not _is_spatial(ev, nhwc) or isinstance(module.get_submodule(ev.name), _SKIP_TYPES):
                continue
            level = _level(ev, hw, fmt)
            if _inside_other_level(ev, by_name, level, hw, fmt, final, nhwc):
                continue  # e.g. the stride-1 branch of a block that downsamples
            levels[level] = ev  # later events overwrite: the outermost, last one
        chosen = [levels[k] for k in sorted(levels)]
        if final is not None and chosen and chosen[-1] is not final:
            chosen[-1] = final
    n = len(chosen)
    return [LayerInfo(e.name, e.kind, "stages", i, n, _nchw_shape(e.out, fmt), fmt=fmt)
            for i, e in enumerate(chosen, 1)]


def _inside_other_level(ev: _Event, by_name: dict[str, _Event], level: int, hw, fmt: str,
                        final: _Event | None, nhwc: bool) -> bool:
    """True if an enclosing module (other than the final feature map) outputs another level."""
    parts = ev.name.split(".")
    for k in range(1, len(parts)):
        anc = by_name.get(".".join(parts[:k]))
        if anc is None or anc is final or (final is not None and anc.out is final.out):
            continue
        if _is_spatial(anc, nhwc) and _level(anc, hw, fmt) != level:
            return True
    return False


def _level(ev: _Event, hw, fmt: str) -> int:
    _, hh, _ = _nchw_shape(ev.out, fmt)
    return round(math.log2(hw[0] / hh))


def _transformer_stages(module: nn.Module, evs: list[_Event]) -> tuple[bool, list[LayerInfo]]:
    """ViT-style models: the longest run of sibling blocks that map tokens (N, L, C) to tokens."""
    by_name = {e.name: e for e in evs}
    best: list[str] = []
    for name, mod in module.named_modules():
        if not isinstance(mod, (nn.Sequential, nn.ModuleList)):
            continue
        kids = [f"{name}.{k}" if name else k for k, _ in mod.named_children()]
        if len(kids) < 2 or not all(k in by_name for k in kids):
            continue
        outs = [by_name[k].out for k in kids]
        if all(o is not None and o.dim() == 3 and o.shape == outs[0].shape for o in outs):
            if len(kids) > len(best):
                best = kids
    if not best:
        return False, []
    length, channels = by_name[best[0]].out.shape[1:]
    grid = _tokens_grid(module, int(length))
    if grid is None:
        return False, []
    gh, gw, prefix = grid
    token_pool = prefix > 0 and getattr(module, "global_pool", "token") in ("token", "")
    n = len(best)
    stages = []
    for i, name in enumerate(best, 1):
        layer, kind, note = name, by_name[name].kind, ""
        if i == n and token_pool:
            # With class-token pooling, the last block's output carries gradient only at the
            # class token; the input of its attention (first LayerNorm) is where the patch
            # tokens still matter (pytorch-grad-cam's choice for ViT).
            norms = [f"{name}.{k}" for k, m in module.get_submodule(name).named_children()
                     if isinstance(m, nn.LayerNorm)]
            if norms:
                layer = norms[0]
                kind = by_name[layer].kind if layer in by_name else "LayerNorm"
                note = "input of the last block's attention: its output feeds only the class token"
        stages.append(LayerInfo(layer, kind, "stages", i, n, (int(channels), gh, gw), fmt="NLC",
                                prefix_tokens=prefix, note=note))
    return True, stages


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
    events = {e.name: e for e in tr.events}
    ev = events.get(name)
    if ev is None:
        try:
            model.module.get_submodule(name)
        except AttributeError:
            raise LayerError(f"{name!r} is not a depth (first, middle, last, a fraction in [0, 1], "
                             f"conv:N) nor a module of {model.name!r}") from None
        raise LayerError(f"module {name!r} does not run in an eval forward of {model.name!r}")
    if ev.calls != 1:
        raise LayerError(f"module {name!r} runs {ev.calls} times per forward; choose its parent")
    shape = ev.shape
    if len(shape) == 4:
        fmt = "NHWC" if getattr(model.module, "output_fmt", "NCHW") == "NHWC" else "NCHW"
        c, h, w = (shape[3], shape[1], shape[2]) if fmt == "NHWC" else shape[1:]
        if h > 1 and w > 1:
            return LayerInfo(name, ev.kind, "module", 0, 0, (int(c), int(h), int(w)), fmt=fmt)
    if len(shape) == 3 and tr.is_transformer:
        grid = _tokens_grid(model.module, int(shape[1]))
        if grid is not None:
            gh, gw, prefix = grid
            return LayerInfo(name, ev.kind, "module", 0, 0, (int(shape[2]), gh, gw), fmt="NLC",
                             prefix_tokens=prefix)
    raise LayerError(f"module {name!r} outputs shape {tuple(shape)}, not a spatial feature map")


def to_nchw(t: torch.Tensor, layer: LayerInfo) -> torch.Tensor:
    """Bring a layer's raw output (NCHW, NHWC or tokens) to an NCHW feature map."""
    if layer.fmt == "NHWC":
        return t.permute(0, 3, 1, 2)
    if layer.fmt == "NLC":
        c, gh, gw = layer.shape
        return t[:, layer.prefix_tokens:, :].reshape(t.shape[0], gh, gw, c).permute(0, 3, 1, 2)
    return t
