"""The Gradio Blocks: inputs on the left, the CAM gallery and its tables in tabs on the right.

Named API endpoints (``gradio_client``: ``client.predict(..., api_name="/explain")``):

* ``explain(image, model, mode, methods, target, top_k, guided, fit, opacity, colormap,
  layer_row, layer)`` -> gallery items (JPEG + caption), top-5 predictions, layer table,
  manifest, labelled gallery JPEG, ZIP (greyscale PNG and raw .npy maps, image, manifest),
  raw maps at feature-map resolution (float32 .npy files)
* ``predict(image, model, fit)`` -> top-5 predictions
* ``layers(model, mode)`` -> the resolved first/middle/last layers (table)
* ``embeddings(...)``, ``compare(image, models, mode, method, target, fit)`` (other tabs)
* ``concepts(image, model, mode, fit, depth, concepts)`` -> Deep Feature Factorization: the k
  concepts' maps at one depth (PNG) and their top classes (table)
* ``models()`` -> the offered model names

Handlers live in :mod:`xai_app.events`, the words in :mod:`xai_app.choices`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

import xai

from . import budget, choices, events, gate, heap, inline_gallery, service
from .blocks import GatedBlocks
from .compare import compare_tab
from .embeddings_tab import embeddings_tab
from .events import Inputs
from .service import (
    DEFAULT_TOP_K,
    LAYER_HEADERS,
    MAX_TOP_K,
    METHOD_CHOICES,
    MORE_METHOD_CHOICES,
    TOP1,
)
from .ui_text import CLIENT_SNIPPET, CSS, INTRO
from .wiring import wire

log = logging.getLogger("xai_app")

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_SIZE = gate.MAX_IMAGE_BYTES  # uploads; data: URLs and URLs get the same limit
QUEUE_SIZE = 32
# browser sessions whose on-screen values Gradio keeps (oldest dropped first): each holds its
# last answer, inline panels included (<= 1.33 x inline_gallery.MAX_INLINE_BYTES), so at most
# ~270 MB; a dropped session's page keeps working and lays its gallery out afresh
SESSIONS = 200
TITLE = "xai · where does the classifier look?"
explain, predict, layers, models = events.explain, events.predict, events.layers, events.models


def _clear_image_errors(image: gr.Image) -> gr.Image:
    """Make an unreadable upload give one clear ``gr.Error`` instead of a processing error.

    Wraps this instance's ``preprocess`` (a ``gr.Image`` subclass would make Gradio write a
    ``.pyi`` stub beside this module at import time)."""
    original = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception as exc:
            log.info("unreadable upload: %s", exc)
            raise gr.Error("the upload is not a readable image (use PNG, JPEG, WebP, GIF, BMP "
                           "or TIFF)", title="Cannot read the image",
                           print_exception=False) from None

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


def _free_text(dropdown: gr.Dropdown, description: str) -> gr.Dropdown:
    """Document a dropdown that takes any text as a string (its choices change per image or
    model: an enum of today's choices would be wrong)."""
    dropdown.api_info = lambda: {"type": "string", "description": description}  # type: ignore
    return dropdown


def _inputs(offered: list[str]) -> Inputs:
    """The left column's widgets, in /explain's argument order."""
    image = _clear_image_errors(gr.Image(
        label="Image", type="filepath", image_mode=None, format="png", height=240,
        sources=["upload", "clipboard", "webcam"], elem_id="xai-image"))
    slot = gr.Column()
    model = gr.Dropdown(choices=choices.model_choices(), value=offered[0], label="Model",
                        allow_custom_value=True, elem_id="xai-model",
                        info="Each model says whether it is ready here.")
    mode = gr.Radio(choices=[("stages", "stages"), ("conv layers", "convs")], value="stages",
                    label="Depth mode", info="stages: feature-map levels; conv layers: the "
                    "N-th conv that runs, as in the reference study")
    methods = gr.CheckboxGroup(choices=list(METHOD_CHOICES + MORE_METHOD_CHOICES),
                               value=list(xai.DEFAULT_METHODS), label="Methods",
                               info="the mission's four by default; more methods after them")
    with gr.Row():
        target = _free_text(gr.Dropdown(
            choices=[("top-1 (the most probable class)", TOP1)], value=TOP1, label="Target class",
            allow_custom_value=True, filterable=True, info=events.TARGET_INFO, min_width=200,
            elem_id="xai-target"), "'top-1', a class label or a class index")
        top_k = gr.Number(value=DEFAULT_TOP_K, precision=0, minimum=1, maximum=MAX_TOP_K,
                          label="Top-k", min_width=100,
                          info="k > 1: one block per class (multi-object)")
    with gr.Row():
        guided = gr.Checkbox(value=False, label="Guided Grad-CAM", min_width=120)
        fit = gr.Radio(choices=[("centre crop", "crop"), ("whole image", "full")],
                       value="crop", label="Fit", min_width=160)
    with gr.Accordion("Overlay and layers (used by the next Explain)", open=False):
        with gr.Row():
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity",
                                min_width=160, elem_id="xai-opacity")
            colormap = gr.Dropdown(choices=list(choices.COLORMAPS), value="jet",
                                   label="Colormap", min_width=120, elem_id="xai-colormap")
        with gr.Row():
            layer_row = gr.Dropdown(choices=list(choices.LAYER_ROWS), value="none",
                                    label="Row for a layer of your choice", min_width=140,
                                    elem_id="xai-layer-row")
            layer = _free_text(gr.Dropdown(
                choices=[], value="", allow_custom_value=True, filterable=True,
                label="Layer: module name or conv:N", min_width=160, elem_id="xai-layer",
                info="from the Layers tab, or any module"),
                "a module name (e.g. 'blocks.3'), 'conv:N' or a fraction in [0, 1]")
    return Inputs(image, model, mode, methods, target, top_k, guided, fit, opacity, colormap,
                  layer_row, layer, slot)


def _outputs(inputs: Inputs, limit: int) -> dict[str, Any]:
    """The right column: tabs with the gallery and its tables, predictions and downloads."""
    out: dict[str, Any] = {}
    with gr.Tabs(elem_id="xai-results"):
        with gr.Tab("Gallery", id="gallery"):
            out["header"] = gr.HTML(choices.header_html(None), elem_id="xai-header")
            out["gallery"] = inline_gallery.Gallery(
                label="Gallery: rows are layers, columns are methods", show_label=False,
                columns=len(METHOD_CHOICES), format="jpeg", object_fit="contain",
                height="auto", elem_id="xai-gallery", interactive=False,
                buttons=["download", "fullscreen"])
        with gr.Tab("Labelled sheet", id="sheet"):
            out["sheet"] = gr.Image(label="The whole gallery as one labelled picture",
                                    show_label=False, type="filepath", format="jpeg",
                                    interactive=False, buttons=["download", "fullscreen"])
        with gr.Tab("Layers", id="layers"):
            out["table"] = gr.Dataframe(headers=LAYER_HEADERS, label="Resolved layers",
                                        interactive=False, wrap=True, elem_id="xai-layers")
        with gr.Tab("Manifest & raw maps", id="manifest"):
            out["manifest"] = gr.JSON(label="manifest.json")
            out["raw"] = gr.File(label="Raw maps at feature-map resolution (float32 .npy; "
                                 "the ZIP has them at image size too)",
                                 file_count="multiple", interactive=False, elem_id="xai-raw")
        embeddings_tab(inputs, limit)
        compare_tab(inputs, limit)
        with gr.Tab("API", id="api"):
            gr.Markdown(CLIENT_SNIPPET)
    with gr.Row(equal_height=False):
        out["predictions"] = gr.Label(num_top_classes=5, label="Top-5 predictions",
                                      elem_id="xai-predictions", scale=1, min_width=200)
        with gr.Column(scale=1, min_width=200):
            out["sheet_file"] = gr.File(label="Download: labelled gallery (JPEG)",
                                        elem_id="xai-sheet-file", interactive=False)
            out["zip"] = gr.File(label="Download: maps (PNG, raw .npy) + image + manifest (ZIP)",
                                 elem_id="xai-zip", interactive=False)
    return out


def build_demo() -> gr.Blocks:
    """The app's Blocks, queued; launch it with :func:`launch`."""
    offered = service.offered_models()
    limit = heap.concurrency()
    # run folders are served where they are: Gradio copies none of them into its cache
    gr.set_static_paths([budget.STORE.root])
    with GatedBlocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600),
                     fill_width=True) as demo:
        budget.STORE.uploads = demo.upload_file_set  # uploads count against the budget
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                inputs = _inputs(offered)
                run = gr.Button("Explain", variant="primary", elem_id="xai-run")
            with gr.Column(scale=3, min_width=300):
                out = _outputs(inputs, limit)
        wire(demo, inputs, run, out, limit, offered)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=limit)
    return demo


def launch(demo: gr.Blocks, **kwargs: Any) -> Any:
    """``demo.launch`` with the app's limits: upload size, sessions kept, no monitoring, no run
    history."""
    options: dict[str, Any] = dict(max_file_size=MAX_FILE_SIZE, enable_monitoring=False,
                                   show_error=False, run_history=False,
                                   state_session_capacity=SESSIONS,
                                   footer_links=["api", "gradio"], css=CSS)
    options.update(kwargs)
    budget.STORE.watch()  # the budget also holds between runs (uploads alone)
    return demo.launch(**options)


__all__ = ["build_demo", "explain", "launch", "layers", "models",
           "predict"]
