"""The engine: every requested map from one forward and one backward pass per target.

Forward hooks on the requested layers keep their outputs. The earliest of them is replaced by
a detached copy that requires grad, and grad mode is switched on only from there, so the
backward pass (``torch.autograd.grad`` with respect to the hooked activations) computes no
parameter gradients and nothing below the earliest requested layer. Every method and layer
shares those activations and gradients.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .cams import DEFAULT_METHODS, GUIDED, METHODS, CamMethod, get_method, method_names
from .cams.guided import deprocess, guided_hooks
from .errors import LayerError, MethodError, TargetError
from .gradients import forward_context, needed_kinds, target_gradients
from .images import ImageInput, prepare
from .layers import LayerInfo, resolve_layer, to_nchw, trace
from .models import LoadedModel, checked_logits, class_logits, eval_mode, load_model
from .perturbation import perturbation_maps
from .trace import output_tensor, replace_output

DEFAULT_DEPTHS = ("first", "middle", "last")
DISPLAY_SIZE = 512
MATMUL_RESIZE_UP_TO = 32  # maps up to 32x32 are enlarged by matrix products


@dataclass(frozen=True)
class Prediction:
    """One class with its probability."""

    index: int
    label: str
    probability: float

    def to_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "probability": self.probability}


@dataclass
class Explanation:
    """The maps for one image: ``cam(method, depth, target)`` gives any of them."""

    model: str
    image: np.ndarray  # RGB uint8 HxWx3: the region the model saw, which maps align with
    box: tuple[int, int, int, int]  # that region in the user's image
    input_size: tuple[int, int]
    predictions: list[Prediction]
    targets: list[Prediction]
    methods: tuple[str, ...]
    depths: tuple[str, ...]
    mode: str
    layers: dict[str, LayerInfo]
    timings: dict[str, float]
    passes: dict[str, int]
    maps: dict[tuple[str, str, int | None], torch.Tensor] = field(repr=False, default_factory=dict)
    guided_grads: dict[int, torch.Tensor] = field(repr=False, default_factory=dict)
    labels: list[str] = field(repr=False, default_factory=list)
    input: torch.Tensor | None = field(repr=False, default=None)  # (1, 3, H, W) model input
    activations: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)  # depth -> CHW

    @property
    def has_guided(self) -> bool:
        return bool(self.guided_grads)

    @property
    def panel_methods(self) -> list[str]:
        """The methods with a map per layer: the computed ones, then Guided Grad-CAM if any."""
        return list(self.methods) + ([GUIDED] if self.has_guided else [])

    def target_index(self, target: int | str | None = None) -> int:
        """The class index of ``target`` (None: the first explained target)."""
        if target is None:
            return self.targets[0].index
        idx = _class_index(target, self.labels)
        if idx not in {t.index for t in self.targets}:
            raise TargetError(f"class {target!r} was not explained; explained: "
                              f"{', '.join(t.label for t in self.targets)}")
        return idx

    def target_prediction(self, target: int | str | None = None) -> Prediction:
        """The explained target ``target`` (None: the first) with its label and probability."""
        idx = self.target_index(target)
        return next(t for t in self.targets if t.index == idx)

    def layer(self, depth: str | float | None = None) -> LayerInfo:
        """The layer resolved for ``depth`` (None: the deepest requested)."""
        key = self.depths[-1] if depth is None else str(depth)
        if key not in self.layers:
            raise LayerError(f"depth {key!r} was not explained; "
                             f"explained: {', '.join(self.depths)}")
        return self.layers[key]

    def cam(self, method: str, depth: str | float | None = None, target: int | str | None = None,
            size: tuple[int, int] | None = None) -> np.ndarray:
        """Float32 HxW map in [0, 1] at the explained image's size (or ``size`` = (h, w))."""
        self.layer(depth)  # raises LayerError for a depth that was not explained
        key = self.depths[-1] if depth is None else str(depth)
        size = size or self.image.shape[:2]
        if str(method).lower() == GUIDED:
            return self._guided_map(key, target, size)
        m = get_method(method)
        if m.name not in self.methods:
            raise MethodError(f"method {m.name!r} was not computed; computed: "
                              f"{', '.join(self.methods)}")
        tgt = None if m.class_agnostic else self.target_index(target)
        return resize_map(self.maps[(m.name, key, tgt)], size).numpy()

    def guided_image(self, depth: str | float | None = None, target: int | str | None = None,
                     size: tuple[int, int] | None = None) -> np.ndarray:
        """Guided Grad-CAM as an RGB uint8 picture (guided backprop x Grad-CAM)."""
        key = self.depths[-1] if depth is None else str(depth)
        g = self._guided_product(key, target)
        pic = deprocess(g).permute(2, 0, 1).unsqueeze(0).float()
        size = size or self.image.shape[:2]
        pic = F.interpolate(pic, size=tuple(size), mode="bilinear", align_corners=False)
        return pic[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()

    def _guided_product(self, key: str, target) -> torch.Tensor:
        if not self.guided_grads:
            raise MethodError("Guided Grad-CAM was not computed; pass guided=True")
        tgt = self.target_index(target)
        cam = resize_map(self.maps[("gradcam", key, tgt)], self.input_size)
        return self.guided_grads[tgt] * cam.unsqueeze(0)

    def _guided_map(self, key: str, target, size) -> np.ndarray:
        g = self._guided_product(key, target).abs().amax(dim=0)
        return resize_map(g, size).numpy()

    def manifest(self) -> dict:
        """A JSON-able summary: model, predictions, targets, layers, timings."""
        return {
            "model": self.model,
            "mode": self.mode,
            "input_size": list(self.input_size),
            "image_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "explained_box": list(self.box),
            "predictions": [p.to_dict() for p in self.predictions],
            "targets": [t.to_dict() for t in self.targets],
            "methods": self.panel_methods,
            "layers": {d: info.to_dict() for d, info in self.layers.items()},
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "passes": dict(self.passes),
        }


def resize_map(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a [0, 1] map to (h, w), then min-max to [0, 1] again (float32, CPU).

    The same arithmetic as ``F.interpolate(mode="bilinear", align_corners=False)``; a small map
    enlarged is two matrix products with cached interpolation matrices instead, 2-3x faster
    than ``interpolate`` on one channel (7x7 -> 300x451: ~80 us instead of ~240 us)."""
    cam = cam.float()
    h, w = cam.shape[-2:]
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        cam = cam.clone()  # normalised in place below
    elif max(h, w) <= MATMUL_RESIZE_UP_TO and out_h >= h and out_w >= w:
        cam = _lerp_matrix(h, out_h, cam.device) @ cam @ _lerp_matrix(w, out_w, cam.device).T
    else:
        cam = F.interpolate(cam[None, None], size=(out_h, out_w), mode="bilinear",
                            align_corners=False)[0, 0]
    # as _normalise, in fewer passes (each one wakes the intra-op threads on a large map); no
    # ReLU: interpolating a map >= 0 with weights >= 0 gives a map >= 0
    lo, hi = torch.aminmax(cam)
    return cam.sub_(lo).div_(hi - lo + 1e-7).cpu()


@functools.lru_cache(maxsize=64)
def _lerp_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
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


def _normalise(cams: torch.Tensor) -> torch.Tensor:
    """Per map: subtract the min, divide by (max + 1e-7), as pytorch-grad-cam's scale_cam_image."""
    flat = cams.reshape(cams.shape[0], -1)
    lo, hi = torch.aminmax(flat, dim=1, keepdim=True)  # max(x - min) is max - min
    return ((flat - lo) / (hi - lo + 1e-7)).reshape(cams.shape)


def _layer_maps(methods: list[CamMethod], acts: torch.Tensor,
                grads: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Each method's (N, H, W) map at one layer, ReLU'd and scaled to [0, 1] (float32, CPU).

    Methods that are a weighted channel sum (those keeping :meth:`CamMethod.cam`) share one
    einsum, and all the layer's maps are scaled together: fewer, larger ops than one chain
    per method, which is what small maps cost on a CPU.
    """
    weighted = [m for m in methods if type(m).cam is CamMethod.cam]
    raw: dict[str, torch.Tensor] = {}
    if weighted:
        w = torch.stack([m.weights(acts, grads) for m in weighted])  # K, N, C
        raw.update(zip([m.name for m in weighted], torch.einsum("knc,nchw->knhw", w, acts)))
    for m in methods:
        if m.name not in raw:
            raw[m.name] = m.cam(acts, grads)
    stacked = torch.stack([raw[m.name] for m in methods])  # K, N, H, W
    k, n, h, w_ = stacked.shape
    scaled = _normalise(stacked.clamp_(min=0).reshape(k * n, h, w_))
    scaled = scaled.reshape(k, n, h, w_).float().cpu()
    return {m.name: scaled[j] for j, m in enumerate(methods)}


def _class_index(target: int | str, labels: Sequence[str]) -> int:
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        idx = int(target)
    elif isinstance(target, str) and target.strip().lstrip("-").isdigit():
        text = target.strip()
        if not text.lstrip("-").isdecimal() or len(text) > 12:  # '²', '①', 5000 digits
            raise TargetError(f"{text[:20]!r} is not a class index in 0..{len(labels) - 1}")
        idx = int(text)
    elif isinstance(target, str):
        wanted = target.strip().lower()
        for i, label in enumerate(labels):
            if label.lower() == wanted:
                return i
        raise TargetError(f"no class named {target!r}")
    else:
        raise TargetError(f"a target is a class index or a label, not {type(target).__name__}")
    if not 0 <= idx < len(labels):
        raise TargetError(f"class index {idx} is out of range 0..{len(labels) - 1}")
    return idx


def _methods(methods: Iterable[str] | str) -> list[CamMethod]:
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m.strip()]
    found: list[CamMethod] = []
    for name in methods:
        if str(name).strip().lower() == GUIDED:
            raise MethodError(f"{GUIDED!r} is switched on with guided=True")
        for key in method_names([name]):  # "all": every cheap one-pass method
            if METHODS[key] not in found:
                found.append(METHODS[key])
    if not found:
        raise MethodError(f"no method given; choose any of {', '.join(METHODS)}")
    return found


@dataclass
class Pass:
    """What one :func:`run_pass` computed: logits, targets, maps, guided gradients,
    activations."""

    logits: torch.Tensor
    targets: list[list[int]]  # per rank, per image: the class explained
    maps: dict[tuple[str, str, int, int | None], torch.Tensor]  # (method, layer, image, class)
    guided: dict[tuple[int, int], torch.Tensor]  # (image, class) -> (3, H, W)
    activations: dict[str, torch.Tensor]  # layer name -> (N, C, H, W) on the CPU, if kept
    timings: dict[str, float]
    passes: dict[str, int]


def run_pass(model: LoadedModel, x: torch.Tensor, layers: list[LayerInfo],
             methods: list[CamMethod], choose_targets, guided: bool,
             keep_activations: bool = False) -> Pass:
    """One forward, one backward per target rank; every map for every layer and method.

    The low-level step under :func:`explain` (also used by the sanity check, the embeddings and
    the benchmark): ``x`` is the preprocessed batch on the model's device, ``choose_targets``
    maps the detached logits to a list (per rank) of per-image class indices.
    """
    module = model.module
    timings: dict[str, float] = {}
    passes = {"forward": 0, "backward": 0}
    order = trace(model).order
    names = sorted({info.name for info in layers}, key=lambda n: order.get(n, 0))
    info_of = {info.name: info for info in layers}
    earliest = names[0]
    store: dict[str, torch.Tensor] = {}
    agnostic = [m for m in methods if not m.uses_gradients and not m.perturbation]
    grad_methods = [m for m in methods if m.uses_gradients and not m.perturbation]
    if guided and "gradcam" not in {m.name for m in grad_methods}:
        grad_methods.append(get_method("gradcam"))  # guided Grad-CAM multiplies it

    def make_hook(name: str):
        def hook(mod, args, out):
            if name in store:
                raise LayerError(f"module {name!r} runs more than once per forward")
            index, t = output_tensor(out, x.shape[0])
            if name == earliest and grad_methods:
                t = t.detach().requires_grad_(True)
                torch.set_grad_enabled(True)  # record the graph from here on only
            store[name] = t
            # later in-place ops (DenseNet's ReLU) must not touch the stored map
            return replace_output(out, index, t.clone())
        return hook

    handles = []
    with eval_mode(module):
        try:
            handles = [module.get_submodule(n).register_forward_hook(make_hook(n)) for n in names]
            t = time.perf_counter()
            with torch.no_grad(), forward_context(grad_methods):
                logits = class_logits(module(x))
            passes["forward"] += 1
            for h in handles:
                h.remove()
            handles = []
            timings["forward"] = time.perf_counter() - t
            targets = choose_targets(logits.detach())  # list (per rank) of per-image class indices
            acts = {n: to_nchw(store[n].detach(), info_of[n]) for n in names}
            kept = {n: a.float().cpu() for n, a in acts.items()} if keep_activations else {}
            maps: dict = {}
            t = time.perf_counter()
            for n in names if agnostic else []:
                for name, cams in _layer_maps(agnostic, acts[n], None).items():
                    for i in range(x.shape[0]):
                        maps[(name, n, i, None)] = cams[i]
            timings["cams"] = time.perf_counter() - t
            timings["backward"] = 0.0
            if grad_methods:
                tensors = [store[n] for n in names]
                for rank, classes in enumerate(targets):
                    t = time.perf_counter()
                    # issue 15: gradients by kind (target, Finer-CAM contrast, ShapleyCAM)
                    by_kind, extra = target_gradients(logits, tensors, list(classes),
                                                      needed_kinds(grad_methods),
                                                      rank < len(targets) - 1)
                    passes["backward"] += 1
                    for key, count in extra.items():
                        passes[key] = passes.get(key, 0) + count
                    timings["backward"] += time.perf_counter() - t
                    t = time.perf_counter()
                    for j, n in enumerate(names):
                        for kind, grads in by_kind.items():
                            group = [m for m in grad_methods if m.gradient == kind]
                            g = torch.zeros_like(store[n]) if grads[j] is None else grads[j]
                            g = to_nchw(g, info_of[n])
                            for name, cams in (_layer_maps(group, acts[n], g).items()
                                               if group else ()):
                                for i, c in enumerate(classes):
                                    maps[(name, n, i, int(c))] = cams[i]
                    timings["cams"] += time.perf_counter() - t
            store.clear()
            if any(m.perturbation for m in methods):  # issue 15: Score-/Ablation-CAM, FullGrad
                t = time.perf_counter()
                maps.update(perturbation_maps(module, x, [info_of[n] for n in names], acts,
                                              [m for m in methods if m.perturbation],
                                              targets, logits.detach(), passes))
                timings["perturbation"] = time.perf_counter() - t
            guided_out: dict = {}
            if guided:
                t = time.perf_counter()
                guided_out = _guided_pass(module, x, targets)
                passes["forward"] += 1
                passes["backward"] += len(targets)
                timings["guided"] = time.perf_counter() - t
            return Pass(logits=logits.detach(), targets=targets, maps=maps, guided=guided_out,
                        timings=timings, passes=passes, activations=kept)
        finally:
            for h in handles:
                h.remove()
            store.clear()


def _guided_pass(module, x: torch.Tensor, targets: list[list[int]]) -> dict:
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


def predict(model: LoadedModel | str, image: ImageInput, *, k: int = 5,
            fit: str = "crop") -> list[Prediction]:
    """The ``k`` most probable classes: one forward under ``inference_mode``, no hooks."""
    if isinstance(model, str):
        model = load_model(model)
    prep = prepare(image, model.input_size, model.mean, model.std, model.interpolation,
                   model.crop_pct, fit)
    with model.lock, torch.inference_mode(), eval_mode(model.module):
        logits = checked_logits(model, model.module(prep.tensor.to(model.device)))
    probs = logits.float().softmax(dim=1)[0].cpu()
    top = probs.topk(max(1, min(k, probs.numel())))
    return [Prediction(int(i), model.labels[int(i)], float(p))
            for p, i in zip(top.values, top.indices)]


def explain(model: LoadedModel | str, image: ImageInput,
            methods: Iterable[str] | str = DEFAULT_METHODS,
            depths: Iterable[str | float] = DEFAULT_DEPTHS, *, mode: str = "stages",
            targets: int | str | Sequence[int | str] | None = None, top_k: int | None = None,
            guided: bool = False, fit: str = "crop", display_size: int | None = DISPLAY_SIZE,
            keep_activations: bool = False) -> Explanation:
    """Explain one image: every method at every depth, for each target.

    ``targets``: None (top-1), a class index, a label or a list of them; ``top_k=k`` explains
    the k most probable classes. ``fit="crop"`` uses the model's centre crop (the region is
    ``result.image``); ``fit="full"`` squeezes the whole image in.
    """
    return explain_batch(model, [image], methods, depths, mode=mode, targets=targets,
                         top_k=top_k, guided=guided, fit=fit, display_size=display_size,
                         keep_activations=keep_activations)[0]


def explain_batch(model: LoadedModel | str, images: Sequence[ImageInput],
                  methods: Iterable[str] | str = DEFAULT_METHODS,
                  depths: Iterable[str | float] = DEFAULT_DEPTHS, *, mode: str = "stages",
                  targets: int | str | Sequence[int | str] | None = None,
                  top_k: int | None = None, guided: bool = False, fit: str = "crop",
                  display_size: int | None = DISPLAY_SIZE,
                  keep_activations: bool = False) -> list[Explanation]:
    """Explain several images in one batched forward (and one backward per target rank).

    ``keep_activations`` keeps each depth's feature map (``result.activations``) for the
    embedding views, at no extra forward.
    """
    t_start = time.perf_counter()
    if isinstance(model, str):
        model = load_model(model)
    method_objs = _methods(methods)
    depth_keys = list(dict.fromkeys(str(d) for d in depths))
    if not depth_keys:
        raise LayerError("no depth given; use first, middle, last, a fraction or conv:N")
    fixed = _fixed_targets(targets, top_k, model.labels)
    t = time.perf_counter()
    prepared = [prepare(img, model.input_size, model.mean, model.std, model.interpolation,
                        model.crop_pct, fit) for img in images]
    t_prep = time.perf_counter() - t
    with model.lock, torch.inference_mode(False):
        layers = {d: resolve_layer(model, d, mode) for d in depth_keys}
        x = torch.cat([p.tensor for p in prepared]).to(model.device)

        def choose(logits: torch.Tensor) -> list[list[int]]:
            if fixed is not None:
                return [[c] * logits.shape[0] for c in fixed]
            k = top_k or 1
            top = logits.topk(k, dim=1).indices.cpu().tolist()
            return [[row[r] for row in top] for r in range(k)]

        run = run_pass(model, x, list(layers.values()), method_objs, choose, guided,
                       keep_activations)
    probs = run.logits.float().softmax(dim=1).cpu()
    results = []
    for i, prep in enumerate(prepared):
        top5 = probs[i].topk(min(5, probs.shape[1]))
        preds = [Prediction(int(j), model.labels[int(j)], float(p))
                 for p, j in zip(top5.values, top5.indices)]
        tg = [Prediction(c[i], model.labels[c[i]], float(probs[i, c[i]])) for c in run.targets]
        maps = {(m, d, c): run.maps[(m, layers[d].name, i, c)]
                for d in depth_keys for (m, n, j, c) in run.maps
                if j == i and n == layers[d].name}
        region = prep.region
        if display_size and max(region.size) > display_size:
            region = region.copy()
            region.thumbnail((display_size, display_size))
        timings = dict(run.timings, preprocess=t_prep,
                       total=time.perf_counter() - t_start)
        results.append(Explanation(
            model=model.name, image=np.asarray(region.convert("RGB")), box=prep.box,
            input_size=tuple(model.input_size), predictions=preds, targets=tg,
            methods=tuple(m.name for m in method_objs), depths=tuple(depth_keys), mode=mode,
            layers=layers, timings=timings, passes=dict(run.passes), maps=maps,
            guided_grads={c: g for (j, c), g in run.guided.items() if j == i},
            labels=list(model.labels), input=prep.tensor,
            activations={d: run.activations[layers[d].name][i] for d in depth_keys
                         if layers[d].name in run.activations}))
    return results


def _fixed_targets(targets, top_k: int | None, labels: Sequence[str]) -> list[int] | None:
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise TargetError(f"top_k must be an integer, not {top_k!r}")
        if not 1 <= int(top_k) <= len(labels):
            raise TargetError(f"top_k={top_k} is out of range 1..{len(labels)}")
        if targets is not None:
            raise TargetError("give either targets or top_k, not both")
        return None
    if targets is None:
        return None
    if isinstance(targets, (str, int, np.integer)):
        targets = [targets]
    found = list(dict.fromkeys(_class_index(t, labels) for t in targets))
    if not found:
        raise TargetError("empty target list")
    return found
