"""Compare models: one image through two or three models, side by side in one labelled sheet,
each model at its own first, middle and last layer (the reference study's figure: DenseNet121,
ResNet152 and Inception v3 on one image). Models come from the app's model cache and each
is explained by the one-pass engine (:func:`xai_app.service.compute`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
from PIL import Image, ImageDraw

import xai
from xai.engine import Explanation
from xai.errors import UnknownModelError
from xai.render import BG, INK, MUTED, PAD, colour_bar, font, method_title, overlay

from . import choices, heap, service, storage
from .events import Inputs, user_errors

MIN_MODELS, MAX_MODELS = 2, 3
COMPARE_HEADERS = ["model", "target", "probability", "first", "middle", "last"]
CELL = 260
ROW_LABEL_W = 90


def check_models(models: object) -> list[str]:
    """2 or 3 distinct offered model names."""
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models):
        raise UnknownModelError("models must be a list of 2 or 3 model names")
    names = list(dict.fromkeys(service.check_model(m) for m in models))
    if not MIN_MODELS <= len(names) <= MAX_MODELS:
        raise UnknownModelError(f"choose {MIN_MODELS} or {MAX_MODELS} different models to "
                                f"compare, not {len(names)}")
    return names


def run_models(image: Any, models: object, mode: object, method: object, target: object,
               fit: object) -> list[Explanation]:
    """One explanation per model (same image, method, target and fit), cached models."""
    names = check_models(models)
    _, mode, fit, methods = service.check_request(names[0], image, mode, [method], fit)
    targets, _ = service.parse_targets(target, 1)
    out = []
    for name in names:
        try:
            service.CACHE.get(name)
        except xai.XaiError as exc:
            raise type(exc)(f"{choices.why_not(name, exc)}; choose another model to "
                            "compare.") from None
        out.append(service.compute(name, image, methods, mode, targets, None, False, fit))
    return out


def sheet(results: Sequence[Explanation], method: str, cell: int = CELL) -> Image.Image:
    """Columns = models, rows = each model's first/middle/last layer, one colour bar."""
    head_f, col_f, small_f = font(17, True), font(14, True), font(11)
    width = ROW_LABEL_W + len(results) * (cell + PAD) + PAD
    top, col_h, cap_h = 58, 56, 30
    height = top + col_h + len(results[0].depths) * (cell + cap_h) + PAD
    canvas = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(canvas)
    draw.text((PAD, 8), f"{method_title(method)} — {results[0].mode}", fill=INK, font=head_f)
    colour_bar(canvas, (width - PAD - 220, 8), 220)
    for j, r in enumerate(results):
        x = ROW_LABEL_W + PAD + j * (cell + PAD)
        t = r.targets[0]
        draw.text((x, top), choices.model_title(r.model), fill=INK, font=col_f)
        draw.text((x, top + 20), f"target: {t.label} · {t.probability:.0%}"[:44], fill=INK,
                  font=small_f)
        draw.text((x, top + 36), f"top-1: {r.predictions[0].label}"[:44], fill=MUTED,
                  font=small_f)
        for i, depth in enumerate(r.depths):
            y = top + col_h + i * (cell + cap_h)
            if j == 0:
                draw.text((PAD, y + 4), depth, fill=INK, font=col_f)
            pic = overlay(r.image, r.cam(method, depth))
            canvas.paste(Image.fromarray(pic).resize((cell, cell), Image.BILINEAR), (x, y))
            layer = r.layer(depth)
            draw.text((x, y + cell + 3), f"{layer.name} · {layer.size}"[:46], fill=MUTED,
                      font=small_f)
    return canvas


def table_rows(results: Sequence[Explanation]) -> list[list[str]]:
    return [[r.model, r.targets[0].label, f"{r.targets[0].probability:.1%}"]
            + [f"{r.layer(d).name} ({r.layer(d).size})" for d in r.depths] for r in results]


@user_errors("compare the models")
@heap.computes
def compare(image: str | None, models: list[str], mode: str, method: str, target: str,
            fit: str, progress: gr.Progress = gr.Progress()) -> tuple[str, list[list[str]]]:
    """One image through 2 or 3 models: a labelled sheet (columns: models, rows: each
    model's own first/middle/last layer) and a table of targets and layers."""
    progress(0.1, desc="loading and explaining each model")
    results = run_models(image, models, mode, method, target, fit)
    progress(0.9, desc="drawing the sheet")
    (path,) = storage.save_pictures([sheet(results, results[0].methods[0])], prefix="cmp-")
    return str(path), table_rows(results)


def compare_tab(inputs: Inputs, limit: int) -> None:
    """The Compare tab: models, one method, the shared image, mode, target and fit."""
    offered = service.offered_models()
    with gr.Tab("Compare models", id="compare"):
        gr.Markdown("One image through 2 or 3 models, each at its own first / middle / last "
                    "layer (image, depth mode, target and fit from the left).")
        with gr.Row():
            models = gr.Dropdown(choices=choices.model_choices(), multiselect=True,
                                 max_choices=MAX_MODELS, value=offered[:1], label="Models",
                                 elem_id="xai-compare-models", scale=3)
            method = gr.Radio(choices=[(method_title(m), m) for m in xai.DEFAULT_METHODS],
                              value="gradcam", label="Method", scale=2)
            go = gr.Button("Compare", variant="secondary", elem_id="xai-compare-run",
                           scale=1)
        picture = gr.Image(label="Models side by side", show_label=False, type="filepath",
                           format="png",
                           interactive=False, elem_id="xai-compare-sheet",
                           buttons=["download", "fullscreen"])
        table = gr.Dataframe(headers=COMPARE_HEADERS, interactive=False, wrap=True,
                             label="Targets and layers", elem_id="xai-compare-table")
    go.click(compare, [inputs.image, models, inputs.mode, method, inputs.target, inputs.fit],
             [picture, table], api_name="compare", concurrency_id="compute",
             concurrency_limit=limit)
