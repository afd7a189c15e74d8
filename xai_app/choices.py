"""What the app offers the user, in words: each model with whether it is ready, the target
classes (the image's top-5 first, then every class), "did you mean" for a mistyped class, the
rows a user may add, and the header above the gallery (target, probability, columns, colour
bar). No Gradio import here."""

from __future__ import annotations

import difflib
import html
from collections.abc import Sequence

import numpy as np

import xai
from xai.loaders import offline
from xai.models import registered_models
from xai.render import colorize, method_title

from . import service

COLORMAPS: tuple[str, ...] = ("jet", "turbo", "viridis", "inferno", "magma", "gray")
LAYER_ROWS: tuple[tuple[str, str], ...] = (
    ("no change", "none"), ("replace first", "first"), ("replace middle", "middle"),
    ("replace last", "last"), ("extra row", "extra"))
MAX_LAYER_CHARS = 200


def model_status(name: str) -> str:
    """"loaded", "bundled", "registered", "cached" (weights on disk) or "download"."""
    if name in service.CACHE:
        return "loaded"
    if name == xai.DEFAULT_MODEL:
        return "bundled"
    if name in registered_models():
        return "registered"
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(name.removeprefix("timm/"))
        hub_id = getattr(cfg, "hf_hub_id", None)
        files = ("model.safetensors", "pytorch_model.bin")
        if hub_id and any(isinstance(try_to_load_from_cache(hub_id, f), str) for f in files):
            return "cached"
    except Exception:  # any doubt: it may need a download
        pass
    return "download"


def model_choices() -> list[tuple[str, str]]:
    """(title with readiness, name) for every offered model."""
    words = {"loaded": "ready (loaded)", "bundled": "ready (bundled, offline)",
             "cached": "ready (weights cached)", "registered": "ready (registered here)",
             "download": "not available offline" if offline() else "downloads weights once"}
    return [(f"{model_title(n)} · {words[model_status(n)]}", n)
            for n in service.offered_models()]


def model_title(name: str) -> str:
    return service.MODEL_TITLES.get(name, name).split(" (")[0]


def why_not(name: str, exc: Exception) -> str:
    """Why model ``name`` could not be loaded, as a clause for a user."""
    if isinstance(exc, xai.UnknownModelError) or name not in service.OFFERED_MODELS:
        return f"“{name[:60]}” is not a model this app offers"
    if isinstance(exc, xai.WeightsUnavailableError):
        where = ("this server is offline" if offline()
                 else "the download did not succeed from this server")
        return f"{model_title(name)} needs to download its weights and {where}"
    return f"{model_title(name)} could not be loaded"


def load_failure(name: str, back_to: str, exc: Exception) -> str:
    """One sentence for a model that could not be loaded (the app went back to ``back_to``)."""
    return f"{why_not(name, exc)}, so the app went back to {model_title(back_to)}."


def class_values(labels: Sequence[str]) -> list[str]:
    """Each class as a target value: its label, or "label (class N)" for a repeated label."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return [f"{label} (class {i})" if counts[label] > 1 else label
            for i, label in enumerate(labels)]


def target_choices(scores: dict[str, float] | None, labels: Sequence[str], current: object,
                   keep: str = "any", every: bool = True) -> tuple[list[tuple[str, str]], str]:
    """(choices, value) for the target list: "top-1", the top-5 with their probability, then
    every other class A-Z (``every=False``: only the kept value of them). ``keep="top5"`` (a
    new image) keeps ``current`` only if it is in the new top-5; ``keep="any"`` keeps any
    class of the model."""
    scores = scores if isinstance(scores, dict) else {}
    choices = [("top-1 (the most probable class)", service.TOP1)]
    choices += [(f"{label} · {p:.0%}", str(label)) for label, p in scores.items()]
    shown = {v for _, v in choices}
    rest = [v for v in sorted(class_values(labels), key=str.lower) if v not in shown]
    allowed = {service.TOP1} | set(scores) | (set(rest) if keep == "any" else set())
    value = current if isinstance(current, str) and current in allowed else service.TOP1
    choices += [(v, v) for v in rest if every or v == value]
    return choices, value


def suggest(text: object, labels: Sequence[str], n: int = 3) -> list[str]:
    """The classes closest to a mistyped ``text`` (difflib ratio ≥ 0.6), best first."""
    if not isinstance(text, str) or not text.strip() or not labels:
        return []
    values = class_values(labels)
    lower = {v.lower(): v for v in values}
    return [lower[m] for m in difflib.get_close_matches(text.strip().lower(), list(lower), n,
                                                        0.6)]


def did_you_mean(text: object, labels: Sequence[str]) -> str:
    """" Did you mean: a, b?" for a target that is not a class (else "")."""
    if not isinstance(text, str) or text.strip().lower() in ("", service.TOP1, "top1", "auto"):
        return ""
    if text.strip().isdigit() or text in class_values(labels) or text in labels:
        return ""
    close = suggest(text, labels)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def rows(layer_row: object, layer: object) -> tuple[str, ...]:
    """The gallery rows: first/middle/last with ``layer`` (a module name, ``conv:N``, a
    fraction) replacing one of them or added as an extra row."""
    text = layer.strip() if isinstance(layer, str) else ""
    if not text or layer_row in (None, "none"):
        return tuple(service.DEPTHS)
    if len(text) > MAX_LAYER_CHARS:
        raise xai.LayerError(f"a layer name has at most {MAX_LAYER_CHARS} characters")
    if layer_row == "extra":
        return tuple(dict.fromkeys([*service.DEPTHS, text]))
    if layer_row not in service.DEPTHS:
        raise xai.LayerError(f"layer_row must be one of {', '.join(v for _, v in LAYER_ROWS)}")
    return tuple(dict.fromkeys(text if d == layer_row else d for d in service.DEPTHS))


def layer_choices(name: str, mode: str) -> list[str]:
    """Module names a user may pick for a row: the model's stages, then its first/last convs."""
    model = service.CACHE.peek(name)
    if model is None:
        return []
    stages = [info.name for info in xai.stage_layers(model)]
    convs = xai.conv_layers(model)
    extra = [f"conv:{i}" for i in (1, 2, max(1, len(convs) // 2), len(convs))] if convs else []
    return list(dict.fromkeys(stages + extra if mode == "stages" else extra + stages))


def columns(manifest: dict | None) -> int:
    """The gallery's column count: one per panel method of the run on screen."""
    methods = (manifest or {}).get("methods") or []
    return max(1, len(methods))


def _gradient(colormap: str) -> str:
    rgb = colorize(np.linspace(0, 1, 11, dtype=np.float32), colormap)
    return ", ".join(f"rgb({r},{g},{b})" for r, g, b in rgb)


def header_html(manifest: dict | None) -> str:
    """The gallery header: target(s) with probability, model, column headers, colour bar."""
    if not manifest:
        return "<div id='xai-head-empty'>Explain an image to see its maps here.</div>"
    e = html.escape
    targets = " · ".join(f"<b>{e(t['label'])}</b> (class {t['index']}) "
                         f"<b>{t['probability']:.0%}</b>" for t in manifest.get("targets", []))
    app = manifest.get("app") or {}
    colormap = (manifest.get("files") or {}).get("overlay", {}).get("colormap", "jet")
    heads = "".join(f"<div>{e(method_title(m))}</div>" for m in manifest.get("methods", []))
    rows_ = " / ".join(e(str(d)) for d in (manifest.get("layers") or {}))
    n = columns(manifest)
    blocks = " (one block of rows per target)" if len(manifest.get("targets", [])) > 1 else ""
    return (f"<div id='xai-head'><div class='xai-target'>Target: {targets}{blocks}</div>"
            f"<div class='xai-meta'>{e(str(manifest.get('model', '')))} · rows: {rows_} · "
            f"{e(str(app.get('fit', '')))}</div>"
            f"<div class='xai-scale'><span>0</span><span class='xai-bar' style='background:"
            f"linear-gradient(to right, {_gradient(colormap)})'></span><span>1</span>"
            f"<span>map value ({e(colormap)})</span></div>"
            f"<div class='xai-cols' style='grid-template-columns: repeat({n}, 1fr)'>{heads}"
            f"</div></div>")
