"""What the app does besides drawing widgets: the offered models, a bounded model cache, one
explain run (written by :mod:`xai_app.storage` within the disk budget), strict parameter
checks, top-5 predictions and the resolved-layer table. No Gradio import here."""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import xai
from xai.cams import get_method
from xai.engine import Explanation, Prediction
from xai.errors import (
    ImageError,
    LayerError,
    MethodError,
    TargetError,
    UnknownModelError,
    WeightsUnavailableError,
    XaiError,
)
from xai.export import env_flag
from xai.images import FITS, clean_text
from xai.layers import MODES, LayerInfo
from xai.render import method_title

from . import heap
from .budget import RunStore
from .model_cache import ModelCache
from .storage import ExplainRun, write_run

log = logging.getLogger("xai_app")

# The bundled offline model first, then the reference study's three, then well-known timm ones.
OFFERED_MODELS: tuple[str, ...] = (
    "efficientnet_lite0", "densenet121", "resnet152", "inception_v3", "resnet50",
    "convnext_tiny", "vit_base_patch16_224",
)
MODEL_TITLES: dict[str, str] = {
    "efficientnet_lite0": "EfficientNet-Lite0 (bundled, offline)",
    "densenet121": "DenseNet121", "resnet152": "ResNet152", "inception_v3": "Inception v3",
    "resnet50": "ResNet50", "convnext_tiny": "ConvNeXt-T", "vit_base_patch16_224": "ViT-B/16",
}
METHOD_CHOICES: tuple[tuple[str, str], ...] = tuple(
    (method_title(m), m) for m in xai.DEFAULT_METHODS)
# "more methods": every other registered method fast enough for a request (issue 15)
MORE_METHOD_CHOICES: tuple[tuple[str, str], ...] = tuple(
    (method_title(n), n) for n, m in xai.METHODS.items()
    if m.interactive and n not in xai.DEFAULT_METHODS)
DEPTHS = xai.DEFAULT_DEPTHS
TOP1 = "top-1"
DEFAULT_TOP_K = 1
MAX_TOP_K = 5
LAYER_HEADERS = ["depth", "module", "kind", "position", "feature map (C×H×W)", "layout", "note"]
MAX_TARGET_CHARS = 200  # far beyond any class label
_CLASS_SUFFIX = re.compile(r"\(class (\d{1,9})\)\s*$")
_clip = functools.partial(clean_text, limit=80)  # user text quoted in a message


def offered_models() -> list[str]:
    """The model names the app offers, the bundled offline one first."""
    return list(OFFERED_MODELS)


def check_model(name: object) -> str:
    """``name`` stripped, if the app serves it (any timm name when XAI_ALLOW_ANY_MODEL=1)."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError("choose a model")
    name = name.strip()
    if name in OFFERED_MODELS or env_flag("XAI_ALLOW_ANY_MODEL"):
        return name
    raise UnknownModelError(f"model {_clip(name)!r} is not offered here; choose one of "
                            f"{', '.join(OFFERED_MODELS)}")


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise LayerError(f"depth mode must be one of {', '.join(MODES)}, not {_clip(mode)!r}")
    return str(mode)


def check_fit(fit: object) -> str:
    if fit not in FITS:
        raise ImageError(f"fit must be one of {', '.join(FITS)}, not {_clip(fit)!r}")
    return str(fit)


def check_methods(methods: Sequence[str] | str | None) -> list[str]:
    """Canonical method names from a list (or a comma-separated string); :class:`MethodError`
    for an unknown one, none at all, or anything but a list of names."""
    if isinstance(methods, str):
        methods = methods.split(",")
    if methods is not None and (not isinstance(methods, (list, tuple))
                                or not all(isinstance(m, str) for m in methods)):
        raise MethodError(f"methods must be a list of method names such as ['gradcam', "
                          f"'eigencam'], not {shown(methods)}")
    names = list(dict.fromkeys(get_method(m).name for m in (methods or []) if m.strip()))
    if not names:
        raise MethodError("choose at least one method ("
                          + ", ".join(t for t, _ in METHOD_CHOICES + MORE_METHOD_CHOICES) + ")")
    return names


def check_request(name: object, image, mode: object, methods: object,
                  fit: object) -> tuple[str, str, str, list[str]]:
    """The checks every map request shares: an image, then model, mode, fit and methods."""
    if image is None:
        raise ImageError("no image: upload one, paste it, take a photo or pick an example")
    return check_model(name), check_mode(mode), check_fit(fit), check_methods(methods)


def whole_number(value: object, name: str, lo: int, hi: int) -> int:
    """``value`` as an int in lo..hi: an int or an integral float (never a bool, a string, NaN
    or infinity); :class:`ValueError` naming ``name`` otherwise."""
    if isinstance(value, (bool, np.bool_)):
        ok = False
    elif isinstance(value, (int, np.integer)):
        ok = True
    else:
        ok = isinstance(value, (float, np.floating)) and math.isfinite(value) and float(
            value).is_integer()
    if not ok or not lo <= value <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, not {shown(value)}")
    return int(value)


def shown(value: object) -> str:
    """``value`` quoted in a message: its repr on one line, at most 80 characters."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**80:
        return f"a {int(value.bit_length() * 0.30103) + 1}-digit number"
    return _clip(repr(value))


def check_flag(value: object, name: str) -> bool:
    """``value`` if it is a boolean (true or false); :class:`ValueError` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, not {shown(value)}")
    return bool(value)


def parse_targets(target: object, top_k: object) -> tuple[str | int | None, int | None]:
    """(targets, top_k) for :func:`xai.explain`: top_k > 1 wins; "top-1" or "" is the default.

    ``target`` is "top-1", a class index, a label or "label (class N)"; ``top_k`` a whole
    number from 1 to :data:`MAX_TOP_K` (None: 1).
    """
    try:
        k = DEFAULT_TOP_K if top_k is None else whole_number(top_k, "top_k", 1, MAX_TOP_K)
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    if k > 1:
        return None, k
    if target is not None and (isinstance(target, bool) or not isinstance(target, (str, int))):
        raise TargetError(f"target must be 'top-1', a class index or a label, not "
                          f"{shown(target)}")
    text = "" if target is None else str(target).strip()
    if len(text) > MAX_TARGET_CHARS:
        raise TargetError(f"target is {len(text):,} characters long; a class label or index "
                          f"has at most {MAX_TARGET_CHARS}")
    if text.lower() in ("", TOP1, "top1", "auto"):
        return None, None
    match = _CLASS_SUFFIX.search(text)
    return (int(match.group(1)) if match else text), None


CACHE = ModelCache()


def on_gpu(fn: Callable) -> Callable:
    """``spaces.GPU`` on ZeroGPU Spaces (where the ``spaces`` package is installed), else ``fn``."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(duration=120)(fn)


def _compute(name: str, image: xai.images.ImageInput, methods: list[str], mode: str,
             targets: str | int | None, top_k: int | None, guided: bool, fit: str,
             depths: Sequence[str] = DEPTHS) -> Explanation:
    # The model is looked up by name: on ZeroGPU this runs in a forked worker that inherits CACHE.
    return xai.explain(CACHE.get(name), image, methods, depths, mode=mode, targets=targets,
                       top_k=top_k, guided=bool(guided), fit=fit)


def _predict(name: str, image: xai.images.ImageInput, fit: str) -> list[Prediction]:
    return xai.predict(CACHE.get(name), image, k=5, fit=fit)


@heap.computes
def warm_up(name: str | None = None) -> None:
    """Load the default model, trace its layers and run one prediction, before the first
    visitor (the first request would otherwise pay for all three); in the compute thread that
    will serve the requests (:mod:`xai_app.heap`)."""
    model = CACHE.get(name or OFFERED_MODELS[0])
    for mode in ("stages", "convs"):
        xai.resolve_layer(model, "last", mode)
    xai.predict(model, np.zeros((model.input_size[0], model.input_size[1], 3), np.uint8))


compute = on_gpu(_compute)
predict_on_device = on_gpu(_predict)


def predict(name: str, image: xai.images.ImageInput, fit: str = "crop") -> list[Prediction]:
    """Top-5 predictions of model ``name`` (loaded through :data:`CACHE`) for ``image``."""
    name, fit = check_model(name), check_fit(fit)
    CACHE.get(name)  # load in this process (before a ZeroGPU worker forks)
    return predict_on_device(name, image, fit)


def model_labels(name: str) -> list[str]:
    """The class labels of a loaded model (empty if it is not loaded)."""
    model = CACHE.peek(name)
    return list(model.labels) if model is not None else []


def label_scores(predictions: Sequence[Prediction],
                 labels: Sequence[str] = ()) -> dict[str, float]:
    """{label: probability} for a label widget. A label that names two classes (ImageNet has
    "crane" twice) becomes "label (class N)", which :func:`parse_targets` reads back exactly."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    out: dict[str, float] = {}
    for p in predictions:
        ambiguous = seen.get(p.label, 0) > 1 or p.label in out
        out[f"{p.label} (class {p.index})" if ambiguous else p.label] = p.probability
    return out


_LAYER_MEMO: dict[tuple[str, str], dict[str, LayerInfo]] = {}
_LAYER_LOCK = threading.Lock()


def resolved_layers(name: str, mode: str = "stages") -> dict[str, LayerInfo]:
    """{depth: LayerInfo} for first/middle/last. Layers depend on the architecture only, so
    a model whose weights cannot be had here is inspected with random weights."""
    name, mode = check_model(name), check_mode(mode)
    with _LAYER_LOCK:
        if (name, mode) in _LAYER_MEMO:
            return _LAYER_MEMO[(name, mode)]
    model = CACHE.peek(name)
    if model is None:
        try:
            model = CACHE.get(name)
        except WeightsUnavailableError:
            model = xai.load_model(name, pretrained=False, device="cpu")
    layers = {d: xai.resolve_layer(model, d, mode) for d in DEPTHS}
    with _LAYER_LOCK:
        _LAYER_MEMO[(name, mode)] = layers
    return layers


def layer_rows(layers: dict[str, LayerInfo]) -> list[list[str]]:
    """Rows under :data:`LAYER_HEADERS`, one per depth."""
    return [[depth, info.name, info.kind, info.position, info.size, info.fmt, info.note]
            for depth, info in layers.items()]


# --- one explain run -------------------------------------------------------------------

def image_stem(image: object) -> str:
    """A file-name stem for outputs: the uploaded file's name, slugged."""
    if isinstance(image, (str, os.PathLike)):
        stem = re.sub(r"[^a-z0-9]+", "-", Path(image).stem.lower()).strip("-")[:40]
        return stem or "image"
    return "image"


def explain(name: str, image: xai.images.ImageInput, *, mode: str = "stages",
            methods: Sequence[str] | str = xai.DEFAULT_METHODS, target: object = TOP1,
            top_k: object = DEFAULT_TOP_K, guided: bool = False, fit: str = "crop",
            store: RunStore | None = None, finish: bool = True,
            on_step: Callable[[float, str], None] | None = None,
            depths: Sequence[str] = DEPTHS, look: dict | None = None) -> ExplainRun:
    """Validate every input, load the model (cached), explain, write the files (within the
    disk budget of ``store``, default :data:`xai_app.budget.STORE`). ``finish=False`` writes
    only the gallery previews: call ``run.finish()`` for the labelled sheet and the ZIP.

    ``on_step(fraction, text)`` reports progress. ``depths``: the rows (checked by the
    caller); ``look``: {"alpha", "colormap"} of the overlays. Raises :class:`xai.XaiError`.
    """
    step = on_step or (lambda fraction, text: None)
    name, mode, fit, method_names = check_request(name, image, mode, methods, fit)
    targets, k = parse_targets(target, top_k)
    try:
        guided = check_flag(guided, "guided")
    except ValueError as exc:
        raise MethodError(str(exc)) from None
    if name not in CACHE:
        step(0.05, f"loading {name} (first use)")
    model = CACHE.get(name)
    step(0.3, f"computing {len(method_names)} methods × 3 layers on {model.device}")
    result = compute(name, image, method_names, mode, targets, k, guided, fit, tuple(depths))
    step(0.7, "rendering the gallery")
    settings = {"model": name, "mode": mode, "methods": method_names, "target": target,
                "top_k": k or 1, "guided": guided, "fit": fit, **(look or {})}
    run = write_run(result, image_stem(image), settings, store, finish)
    step(1.0, "done")
    return run


__all__ = [
    "CACHE", "DEFAULT_TOP_K", "DEPTHS", "ExplainRun", "FITS", "LAYER_HEADERS", "MAX_TOP_K",
    "METHOD_CHOICES", "MORE_METHOD_CHOICES", "MODEL_TITLES", "MODES", "ModelCache",
    "OFFERED_MODELS", "TOP1",
    "XaiError", "check_fit", "check_flag", "check_methods", "check_mode", "check_model",
    "check_request", "explain", "image_stem", "label_scores", "layer_rows", "model_labels",
    "offered_models", "parse_targets", "predict", "resolved_layers", "whole_number",
]
