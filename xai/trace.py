"""One recorded eval forward (and backward): what every module computed, and from what.

Each module that runs is an :class:`Event` in completion order, with its output, how that
output is laid out as a feature map (NCHW, NHWC, or tokens NLC with their grid and prefix
tokens, read off the tensor against the input's size), which earlier module produced its input
(the data flow, followed through views and in-place ops), and whether the logits depend on its
spatial positions (one backward). :mod:`xai.stages` builds the first/middle/last choice on it;
the convs that ran give the reference study's ``conv:N`` numbering.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .models import LoadedModel, checked_logits, eval_mode

TOKEN_ASPECT = 0.2  # a token count must factor into the input's aspect closely
MAX_PREFIX_TOKENS = 16  # class, distillation and register tokens before the patch grid


@dataclass(frozen=True)
class Grid:
    """How a module's output reads as a feature map: layout, (C, H, W) and prefix tokens."""

    fmt: str  # "NCHW", "NHWC" or "NLC"
    shape: tuple[int, int, int]
    prefix_tokens: int = 0
    level: int = 0  # spatial reductions from the input: round(log2(input height / height))


@dataclass
class Event:
    """A module that ran: its name, type, output and where its input came from."""

    name: str
    kind: str
    start: int  # when its forward began (pre-hook counter)
    end: int  # when it finished (completion counter)
    shape: tuple[int, ...]
    grid: Grid | None
    calls: int = 1
    item: int = -1  # where the map is in a tuple output (-1: the output is the map)
    source: int | None = None  # index (in completion order) of the event that fed its input
    same_as: int | None = None  # the child event whose output is this event's output
    spatial_gradient: bool = False  # the logits depend on its grid positions
    out: torch.Tensor | None = field(default=None, repr=False)
    in_keys: tuple[int, ...] = field(default=(), repr=False)
    out_key: int = 0  # storage the module returned (its output as received)
    key: int = 0  # storage of the copy handed on to the next module


@dataclass
class Trace:
    """What one eval forward showed: modules in completion order and the convs that ran."""

    events: list[Event]
    conv_events: list[Event]
    stages: list = field(default_factory=list)  # LayerInfo, filled by xai.layers
    convs: list = field(default_factory=list)
    isotropic: bool = False

    @functools.cached_property
    def order(self) -> dict[str, int]:
        """Module name -> its place in completion order."""
        return {e.name: i for i, e in enumerate(self.events)}

    @functools.cached_property
    def by_name(self) -> dict[str, Event]:
        return {e.name: e for e in self.events}


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item)]
    return []


def output_tensor(out, batch: int) -> tuple[int, torch.Tensor | None]:
    """(index, tensor) of a module's output map: the output itself (index -1), or the first
    item of a tuple with the input's batch size (HF layers return ``(hidden_states, ...)``;
    TNT's blocks ``(pixel tokens of every patch, patch tokens)``)."""
    if isinstance(out, torch.Tensor):
        return -1, out
    if isinstance(out, (tuple, list)):
        for k, item in enumerate(out):
            if isinstance(item, torch.Tensor) and item.dim() >= 3 and item.shape[0] == batch:
                return k, item
    return -1, None


def replace_output(out, index: int, tensor: torch.Tensor):
    """``out`` with its map (as found by :func:`output_tensor`) replaced by ``tensor``."""
    if index < 0:
        return tensor
    items = list(out)
    items[index] = tensor
    return type(out)(items) if isinstance(out, tuple) else items


def read_grid(t: torch.Tensor, input_hw: tuple[int, int], nhwc_hint: bool,
              prefix_hint: int | None) -> Grid | None:
    """``t`` as a feature map with a spatial grid (both sides > 1), or None. A 4-D map is
    NCHW or NHWC, whichever grid matches the input's aspect better (ties: the model's
    ``output_fmt``, else NCHW)."""
    h_in, w_in = input_hw
    if t.dim() == 4:
        n, a, b, c = (int(s) for s in t.shape)
        nchw = _aspect_error(b, c, input_hw) if _fits(b, c, input_hw) else None
        nhwc = _aspect_error(a, b, input_hw) if _fits(a, b, input_hw) else None
        if nhwc is not None and (nchw is None or nhwc < nchw or (nhwc == nchw and nhwc_hint)):
            return Grid("NHWC", (c, a, b), 0, _level(a, h_in))
        if nchw is not None:
            return Grid("NCHW", (a, b, c), 0, _level(b, h_in))
        return None
    if t.dim() == 3:
        length, channels = int(t.shape[1]), int(t.shape[2])
        grid = token_grid(length, input_hw, prefix_hint) if channels > 1 else None
        if grid is not None:
            gh, gw, prefix = grid
            return Grid("NLC", (channels, gh, gw), prefix, _level(gh, h_in))
    return None


def _aspect_error(h: int, w: int, input_hw: tuple[int, int]) -> float:
    return round(abs(math.log2(input_hw[0] / h) - math.log2(input_hw[1] / w)), 6)


def _fits(h: int, w: int, input_hw: tuple[int, int], tolerance: float = 0.6) -> bool:
    """(h, w) is a plausible grid over the input: both > 1, no larger, the same aspect within
    ``tolerance`` (log2; odd sizes like Inception's 299 -> 149 x 149 -> 73 x 73 need some)."""
    h_in, w_in = input_hw
    if not (1 < h <= h_in and 1 < w <= w_in):
        return False
    return _aspect_error(h, w, input_hw) < tolerance


def _level(h: int, h_in: int) -> int:
    return round(math.log2(h_in / h))


def token_grid(length: int, input_hw: tuple[int, int],
               prefix_hint: int | None = None) -> tuple[int, int, int] | None:
    """(grid_h, grid_w, prefix) for ``length`` tokens over an input of ``input_hw``: the split
    into prefix tokens and a grid closest to the input's aspect (ties: the model's own prefix
    count, then the fewest)."""
    h_in, w_in = input_hw
    best: tuple[float, int, int, int, int] | None = None
    for prefix in range(MAX_PREFIX_TOKENS + 1):
        n = length - prefix
        if n < 4:
            break
        gh = max(1, round(math.sqrt(n * h_in / w_in)))
        for h in (gh - 1, gh, gh + 1):
            if h > 1 and n % h == 0 and _fits(h, n // h, input_hw, TOKEN_ASPECT):
                key = (_aspect_error(h, n // h, input_hw), prefix != prefix_hint, prefix, h,
                       n // h)
                best = key if best is None or key < best else best
    return (best[3], best[4], best[2]) if best is not None else None


class Recorder:
    """Forward pre- and post-hooks on every module: events, inputs, outputs (a lifecycle
    object: ``attach``, run the forward, ``detach`` in a ``finally``)."""

    def __init__(self, module: nn.Module, input_hw: tuple[int, int]):
        self.module, self.input_hw = module, input_hw
        self.events: dict[str, Event] = {}
        self.order: list[str] = []
        self.convs: list[str] = []
        self.clock = 0
        self.starts: dict[str, int] = {}
        self.handles: list = []
        self.nhwc = getattr(module, "output_fmt", "NCHW") == "NHWC"
        self.prefix = getattr(module, "num_prefix_tokens", None)
        self.batch = 1

    def attach(self) -> None:
        for name, mod in self.module.named_modules():
            if name:
                self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
                self.handles.append(mod.register_forward_hook(self._post(name), with_kwargs=True))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _pre(self, name: str):
        def fn(mod, args):
            self.clock += 1
            self.starts.setdefault(name, self.clock)
        return fn

    def _post(self, name: str):
        def fn(mod, args, kwargs, out):
            self.clock += 1
            if name in self.events:
                self.events[name].calls += 1
                return None
            index, t = output_tensor(out, self.batch)
            ev = Event(name, type(mod).__name__, self.starts[name], self.clock,
                       tuple(t.shape) if t is not None else (), None)
            ev.in_keys = tuple(_storage(x) for x in _tensors((args, kwargs)))
            self.events[name] = ev
            self.order.append(name)
            if isinstance(mod, nn.Conv2d):
                self.convs.append(name)
            if t is None:
                return None
            ev.out, ev.out_key, ev.item = t, _storage(t), index
            ev.grid = read_grid(t, self.input_hw, self.nhwc, self.prefix)
            copy = t.clone()  # in-place ops downstream (DenseNet's ReLU) leave `out` intact
            ev.key = _storage(copy)
            return replace_output(out, index, copy)
        return fn


def record(model: LoadedModel) -> Trace:
    """Run the recorded forward and backward on ``model`` (under its lock) and link events."""
    module = model.module
    h, w = model.input_size
    rec = Recorder(module, (h, w))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, h, w, generator=gen).to(model.device)
    with model.lock, eval_mode(module), torch.inference_mode(False), torch.enable_grad():
        rec.attach()
        try:
            logits = checked_logits(model, module(x.requires_grad_(True)))
        finally:
            rec.detach()
        events = [rec.events[n] for n in rec.order]
        _link(events)
        _mark_gradients(events, logits)
    for ev in events:
        ev.out = None  # drop the traced tensors
    convs = [rec.events[n] for n in rec.convs]
    return Trace(events, convs)


def _link(events: list[Event]) -> None:
    """Each event's ``source`` (the module whose output it read) and ``same_as`` (the child
    that returned its output)."""
    last_by_key: dict[int, list[int]] = {}
    for i, ev in enumerate(events):
        if ev.key:
            last_by_key.setdefault(ev.key, []).append(i)
    for i, ev in enumerate(events):
        for key in ev.in_keys:
            found = [j for j in last_by_key.get(key, []) if events[j].end < ev.start]
            if found:
                ev.source = found[-1]
                break
        prefix = ev.name + "."
        for j in range(i - 1, -1, -1):
            if not events[j].name.startswith(prefix):
                if events[j].end < ev.start:
                    break
                continue
            if events[j].key == ev.out_key:
                ev.same_as = j
                break


def _mark_gradients(events: list[Event], logits: torch.Tensor) -> None:
    """Set ``spatial_gradient`` on events whose grid positions the logits depend on."""
    cands = [ev for ev in events if ev.grid is not None and ev.out is not None
             and ev.out.requires_grad and ev.calls == 1]
    if not cands:
        return
    try:
        grads = torch.autograd.grad(logits.float().sum(), [ev.out for ev in cands],
                                    allow_unused=True)
    except RuntimeError:  # a model whose graph cannot be differentiated: no gradient test
        return
    for ev, g in zip(cands, grads):
        if g is not None:
            if ev.grid.fmt == "NLC":
                g = g[:, ev.grid.prefix_tokens:]
            ev.spatial_gradient = bool(g.abs().sum() > 0)
