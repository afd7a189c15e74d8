"""The engine's entry points: :func:`predict`, :func:`explain` and :func:`explain_batch`.

Every requested map comes from one shared pass (:func:`xai.passes.run_pass`): forward hooks
keep the requested layers' outputs, grad mode is switched on only from the earliest of them,
and one backward per target reaches those activations without parameter gradients. The result
type lives in :mod:`xai.explanation`, post-processing in :mod:`xai.postprocess`, the hooks in
:mod:`xai.recorder` and target selection in :mod:`xai.targets`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .cams import DEFAULT_METHODS, GUIDED, METHODS, CamMethod, method_names
from .errors import LayerError, MethodError
from .explanation import Explanation, PanelKey, Prediction
from .images import ImageInput, Prepared, prepare
from .layers import LayerInfo, resolve_layer
from .models import LoadedModel, checked_logits, class_logits, eval_mode, load_model
from .passes import MapKey, Pass, guided_pass, run_pass
from .postprocess import layer_maps, normalise, resize_map
from .targets import resolve_targets

DEFAULT_DEPTHS = ("first", "middle", "last")
DISPLAY_SIZE = 512

__all__ = ["DEFAULT_DEPTHS", "DISPLAY_SIZE", "Explanation", "MapKey", "PanelKey", "Pass",
           "Prediction", "class_logits", "explain", "explain_batch", "guided_pass",
           "layer_maps", "normalise", "predict", "resize_map", "run_pass"]


def resolve_methods(methods: Iterable[str] | str) -> list[CamMethod]:
    """The registered methods named in ``methods`` (a list or a comma-separated string)."""
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
        raise MethodError(f"no method given; choose any of {', '.join(method_names())}")
    return found


def predict(model: LoadedModel | str, image: ImageInput, *, k: int = 5,
            fit: str = "crop") -> list[Prediction]:
    """The ``k`` most probable classes: one forward under ``inference_mode``, no hooks."""
    if isinstance(model, str):
        model = load_model(model)
    prep = prepare(image, model.preprocessing, fit, DISPLAY_SIZE)  # as explain decodes it
    with model.lock, torch.inference_mode(), eval_mode(model.module):
        logits = checked_logits(model, model.module(model.place(prep.tensor)))
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
    method_objs = resolve_methods(methods)
    depth_keys = list(dict.fromkeys(str(d) for d in depths))
    if not depth_keys:
        raise LayerError("no depth given; use first, middle, last, a fraction or conv:N")
    chosen = resolve_targets(targets, top_k, model.labels)
    t = time.perf_counter()
    prepared = [prepare(img, model.preprocessing, fit, display_size) for img in images]
    t_prep = time.perf_counter() - t
    with model.lock, torch.inference_mode(False):
        layers = {d: resolve_layer(model, d, mode) for d in depth_keys}
        x = model.place(torch.cat([p.tensor for p in prepared]))
        run = run_pass(model, x, list(layers.values()), method_objs, chosen, guided=guided,
                       keep_activations=keep_activations)
    probs = run.logits.float().softmax(dim=1).cpu()
    results = []
    for i, prep in enumerate(prepared):
        result = _one_result(model, run, i, prep, probs[i], layers, display_size)
        result.methods = tuple(m.name for m in method_objs)
        result.mode = mode
        result.timings.update(preprocess=t_prep, total=time.perf_counter() - t_start)
        results.append(result)
    return results


def _one_result(model: LoadedModel, run: Pass, i: int, prep: Prepared, probs: torch.Tensor,
                layers: dict[str, LayerInfo], display_size: int | None) -> Explanation:
    """Image ``i`` of a batched pass as an :class:`Explanation` (maps keyed by depth)."""
    top5 = probs.topk(min(5, probs.shape[0]))
    preds = [Prediction(int(j), model.labels[int(j)], float(p))
             for p, j in zip(top5.values, top5.indices)]
    targets = [Prediction(c[i], model.labels[c[i]], float(probs[c[i]])) for c in run.targets]
    by_layer = {info.name: [d for d, inf in layers.items() if inf.name == info.name]
                for info in layers.values()}
    maps, raw = {}, {}
    for key, cam in run.maps.items():
        if key.image == i:
            for d in by_layer[key.layer]:
                maps[PanelKey(key.method, d, key.target)] = cam
                raw[PanelKey(key.method, d, key.target)] = run.raw[key]
    region = prep.region
    if display_size and max(region.size) > display_size:
        region = region.copy()
        region.thumbnail((display_size, display_size))
    return Explanation(
        model=model.name, image=np.asarray(region.convert("RGB")), box=prep.box,
        input_size=tuple(model.input_size), predictions=preds, targets=targets,
        methods=(), depths=tuple(layers), mode="", layers=layers, timings=dict(run.timings),
        passes=dict(run.passes), maps=maps, raw_maps=raw,
        guided_grads={c: g for (j, c), g in run.guided.items() if j == i},
        labels=model.labels, input=prep.tensor,
        activations={d: run.activations[info.name][i] for d, info in layers.items()
                     if info.name in run.activations})
