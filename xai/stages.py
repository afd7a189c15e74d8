"""Which modules are the stages of a model: the candidates for first, middle and last.

Built on one recorded forward (:mod:`xai.trace`), for any architecture:

1. **The final map** is the last feature map the model computes before its head: pooling,
   layout (permute, flatten), dropout and identity modules and the classifier are skipped, and
   so is any map whose grid positions the logits do not depend on (a ViT's last block when the
   head reads only the class token).
2. **The main path** runs back from it through the data flow: each module's input came from
   the module that produced it (followed through views and in-place ops; across a functional
   step, from the module that finished just before).
3. **Stages** are, on that path, the last module of each spatial-reduction level (hierarchical
   models: ResNet, DenseNet, Swin, PVT, ...); a module spanning several levels (VGG's
   ``features``) is opened up. Single-layer modules before the first multi-layer one are the
   stem and are dropped while three stages remain. Where timm's ``feature_info`` names modules
   on the path, they are used instead.
4. **Isotropic models** (ViT, DeiT, ConvMixer, MLP-Mixer: fewer than three levels) use their
   blocks, the longest run of same-level siblings on the path.
"""

from __future__ import annotations

from torch import nn

from .trace import Event, Trace

NOT_STAGES = {"Identity", "Dropout", "Dropout2d", "DropPath", "Flatten", "Unflatten", "Permute",
              "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "LPPool2d",
              "SelectAdaptivePool2d", "AdaptiveAvgMaxPool2d", "AdaptiveCatAvgMaxPool2d",
              "FastAdaptiveAvgPool", "Format", "PatchDropout"}
PASS_THROUGH = {"Identity", "Dropout", "Dropout2d", "DropPath"}
STEM_WORDS = ("stem", "patch_embed", "embeddings", "embedder")
HEAD_NAMES = ("classifier", "fc", "head", "heads", "head_dist", "dist_head", "aux_head",
              "last_linear", "logits", "pooler")


def find_stages(module: nn.Module, tr: Trace) -> tuple[list[Event], bool]:
    """The stage events in depth order, and whether the model is isotropic (blocks)."""
    events = tr.events
    heads = _head_names(module)
    ok = {i for i in range(len(events)) if _usable(events, i, heads)}
    if not ok:
        return [], False
    path = _expand(events, _path(events, max(ok)), lambda i, p: _span(events, i, p, ok) >= 2)
    levels = {events[i].grid.level for i in path if i in ok}
    if len(levels) < 3:
        for _ in range(2):  # torchvision's ViT: `encoder`, then `encoder.layers` in it
            path = _expand(events, path, lambda i, p: _has_blocks(events, p, ok), once=True)
    path = _trim_without_gradient(events, path, ok)
    picks = [_outermost(tr, i, ok) for i in _per_level(events, [i for i in path if i in ok])]
    named = _feature_info_picks(module, tr, ok, path)
    if named is not None and len(named) >= len(picks):
        picks = named
    scanned = _scan(tr, ok)
    if len(scanned) > len(picks) and len(picks) < 3:
        picks = scanned  # a main path broken into branches (CoaT's parallel blocks)
    if len({events[i].grid.level for i in picks}) >= 3:
        core = _drop_stem(module, events, picks)
        if len(core) >= 3:
            return [events[i] for i in core], False
        blocks = _path_blocks(module, events, path, ok)  # VOLO: stem, one level, one more
        if len(blocks) >= 3:
            return [events[i] for i in blocks], True
        return [events[i] for i in picks[-max(3, len(core)):]], False
    blocks = max(_blocks(events, path, ok), _path_blocks(module, events, path, ok), key=len)
    chosen, isotropic = (blocks, True) if len(blocks) >= len(picks) else (picks, False)
    if 0 < len(chosen) < 3:
        chosen = chosen + _inner_last(module, tr, chosen[-1], ok)
    return [events[i] for i in chosen], isotropic


def _path_blocks(module: nn.Module, events: list[Event], path: list[int],
                 ok: set[int]) -> list[int]:
    """The multi-layer, non-stem path modules (a model with one or two levels but several
    stages, like VOLO's outlooker and transformer stages)."""
    return [i for i in path if i in ok and not _is_stem(events[i].name)
            and _layer_count(module.get_submodule(events[i].name)) >= 2]


def _scan(tr: Trace, ok: set[int]) -> list[int]:
    """Stages without a path: from the last outermost map of the deepest level, going back,
    the last outermost map of each smaller level (outermost: no usable module around it)."""
    events = tr.events
    outer = [i for i in sorted(ok) if events[i].spatial_gradient and not any(
        tr.order.get(p) in ok for p in _ancestors(events[i].name))]
    if not outer:
        return []
    top = max(events[i].grid.level for i in outer)
    picks = [max(i for i in outer if events[i].grid.level == top)]
    for i in reversed(outer):
        if events[i].end < events[picks[-1]].start and \
                events[i].grid.level < events[picks[-1]].grid.level:
            picks.append(i)
    return picks[::-1]


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def _inner_last(module: nn.Module, tr: Trace, last: int, ok: set[int]) -> list[int]:
    """For a model with fewer than three stages: the last multi-layer map with a gradient
    after ``last`` (inside a CrossViT's last block, whose output feeds only the class token:
    its branch blocks, not a projection inside its cross-attention)."""
    events = tr.events
    after = [i for i in sorted(ok) if i > last and events[i].spatial_gradient
             and not events[i].name.startswith(events[last].name + ".")
             and _layer_count(module.get_submodule(events[i].name)) >= 2]
    outer = [i for i in after if not any(tr.order.get(p) in after for p in
                                         _ancestors(events[i].name))]
    same = [i for i in outer if events[i].grid.shape[1:] == events[last].grid.shape[1:]]
    return (same or outer)[-1:]  # the branch the other stages are on


def _usable(events: list[Event], i: int, heads: tuple[str, ...]) -> bool:
    ev = events[i]
    if ev.grid is None or ev.calls != 1 or ev.kind in NOT_STAGES \
            or _effective_kind(events, i) in NOT_STAGES:
        return False
    return not any(ev.name == h or ev.name.startswith(h + ".") for h in heads)


def _effective_kind(events: list[Event], i: int) -> str:
    """The type of the innermost module that produced event ``i``'s output (through
    pass-through modules: a block ending in an identity ``drop_path`` is not an identity,
    and one whose identity reads a functional result computed the output itself)."""
    seen: set[int] = set()
    kind = events[i].kind
    while i not in seen:
        seen.add(i)
        ev = events[i]
        if ev.same_as is not None:
            kind, i = ev.kind, ev.same_as
        elif ev.kind in PASS_THROUGH:
            if ev.source is None:
                return kind  # the enclosing module computed it (functional ops)
            i = ev.source
        else:
            return ev.kind
    return kind


def _head_names(module: nn.Module) -> tuple[str, ...]:
    names = [n for n, _ in module.named_modules()
             if n.count(".") <= 1 and n.rsplit(".", 1)[-1] in HEAD_NAMES]
    get = getattr(module, "get_classifier", None)
    if callable(get):
        try:
            head = get()
        except Exception:  # a model whose get_classifier needs arguments or state
            head = None
        for name, mod in module.named_modules():
            if name and mod is head:
                names.append(name)
    return tuple(names)


def _source(events: list[Event], i: int) -> int | None:
    """The event whose output event ``i`` read: the data flow, or across a functional step
    the module that finished last before ``i`` began."""
    ev = events[i]
    if ev.source is not None:
        return ev.source
    before = [j for j in range(i) if events[j].end < ev.start]
    return max(before, key=lambda j: events[j].end) if before else None


def _path(events: list[Event], final: int) -> list[int]:
    """The main path from the input to ``final``, in forward order."""
    path, seen, i = [], set(), final
    while i is not None and i not in seen:
        seen.add(i)
        path.append(i)
        i = _source(events, i)
    return path[::-1]


def _per_level(events: list[Event], path: list[int]) -> list[int]:
    """The last path module of each level, going back from the end; levels only fall."""
    picks: list[int] = []
    for i in reversed(path):
        level = events[i].grid.level
        if not picks or level < events[picks[-1]].grid.level:
            picks.append(i)
    return picks[::-1]


def _layer_count(module: nn.Module) -> int:
    """Modules with a weight matrix or kernel of their own (convs, linears) in ``module``."""
    return sum(any(p.dim() >= 2 for p in m.parameters(recurse=False)) for m in module.modules())


def _drop_stem(module: nn.Module, events: list[Event], picks: list[int]) -> list[int]:
    """Drop the stem: leading single-layer picks before the first multi-layer one, and
    leading modules named as a stem or patch embedding."""
    sizes = [_layer_count(module.get_submodule(events[i].name)) for i in picks]
    flat = max(sizes, default=0) <= 1  # VGG, AlexNet: every level is a stage
    start = 0
    while start < len(picks) and (_is_stem(events[picks[start]].name)
                                  or (sizes[start] <= 1 and not flat)):
        start += 1
    return picks[start:]


def _is_stem(name: str) -> bool:
    """A module named as the stem or the patch embedding (timm's and HF's names)."""
    return any(word in part for part in name.split(".")[:2] for word in STEM_WORDS)


def _outermost(tr: Trace, i: int, ok: set[int]) -> int:
    """The outermost usable module whose output is event ``i``'s and that holds one level
    only (``blocks.0`` for ``blocks.0.0``; not VGG's ``features`` for its last ReLU)."""
    while True:
        parent = tr.by_name.get(_parent(tr.events[i].name))
        j = tr.order[parent.name] if parent is not None else None
        if j is None or j not in ok or parent.same_as != i \
                or _span(tr.events, j, _inner_path(tr.events, j), ok) > 0:
            return i
        i = j


def _has_blocks(events: list[Event], inner: list[int], ok: set[int]) -> bool:
    """``inner`` holds three or more blocks, itself or inside one of its modules."""
    if len(_blocks(events, inner, ok)) >= 3:
        return True
    return any(len(_blocks(events, _inner_path(events, j), ok)) >= 3 for j in inner)


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _blocks(events: list[Event], path: list[int], ok: set[int]) -> list[int]:
    """The longest run of usable, numbered sibling modules at one level on ``path`` (a
    ViT's ``blocks.0`` .. ``blocks.11``)."""
    best: list[int] = []
    run: list[int] = []
    for i in path:
        ev = events[i]
        if i not in ok or not ev.name.rsplit(".", 1)[-1][-1:].isdigit():
            run = []
            continue
        prev = events[run[-1]] if run else None
        if prev is None or _parent(prev.name) != _parent(ev.name) \
                or prev.grid.level != ev.grid.level:
            run = []
        run.append(i)
        if len(run) > len(best):
            best = list(run)
    return best


def _inner_path(events: list[Event], i: int) -> list[int]:
    """The path inside module ``i``: from the child that returned its output back to where
    its input entered it."""
    j = events[i].same_as
    if j is None:
        return []
    prefix = events[i].name + "."
    inner: list[int] = []
    while j is not None and events[j].name.startswith(prefix) and j not in inner:
        inner.append(j)
        j = _source(events, j)
    return inner[::-1]


def _span(events: list[Event], i: int, inner: list[int], ok: set[int]) -> int:
    """How many levels module ``i`` creates: those of its usable inner modules other than the
    level of its input (a pooling step does not count: DenseNet's transition stays closed;
    nor does a stage's leading downsample norm: ConvNeXt's stages stay closed)."""
    src = _source(events, inner[0]) if inner else None
    entry = events[src].grid.level if src is not None and events[src].grid is not None else 0
    return len({events[j].grid.level for j in inner if j in ok} - {entry})


def _expand(events: list[Event], path: list[int], wanted, once: bool = False) -> list[int]:
    """Open every path module whose inner path is ``wanted`` (recursively unless ``once``);
    with ``once``, only the one with the longest inner path."""
    opened = [(i, _inner_path(events, i)) for i in path]
    opened = [(i, inner) for i, inner in opened if len(inner) >= 2 and wanted(i, inner)]
    if once and opened:
        opened = [max(opened, key=lambda item: len(item[1]))]
    if not opened:
        return path
    inners = dict(opened)
    out: list[int] = []
    for i in path:
        out += inners.get(i, [i])
    return out if once else _expand(events, out, wanted)


def _trim_without_gradient(events: list[Event], path: list[int], ok: set[int]) -> list[int]:
    """Drop trailing path modules whose grid the logits do not depend on (when any does)."""
    if not any(events[i].spatial_gradient for i in path if i in ok):
        return path  # e.g. a zero-initialised head: no gradient anywhere, nothing to learn
    end = len(path)
    while end and not (path[end - 1] in ok and events[path[end - 1]].spatial_gradient):
        end -= 1
    return path[:end]


def _feature_info_picks(module: nn.Module, tr: Trace, ok: set[int],
                        path: list[int]) -> list[int] | None:
    """timm's ``feature_info`` modules, when all are usable and in depth order; the final
    map replaces (or follows) the last of them."""
    info = getattr(module, "feature_info", None)
    try:
        names = [f["module"] for f in info] if info is not None else []
    except (TypeError, KeyError):
        return None
    idx = [tr.order.get(n) for n in names]
    if not names or any(i is None or i not in ok for i in idx):
        return None
    picks = _per_level(tr.events, sorted(i for i in idx if i <= path[-1]))
    final = path[-1]
    if picks and final != picks[-1]:
        same = tr.events[final].grid.level == tr.events[picks[-1]].grid.level
        picks = picks[:-1] + [final] if same else picks + [final]
    return picks
