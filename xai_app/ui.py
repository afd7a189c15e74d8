"""The Gradio Blocks: inputs on the left, the CAM gallery and its tables in tabs on the right.

Named API endpoints (``gradio_client``: ``client.predict(..., api_name="/explain")``):

* ``explain(image, model, mode, methods, target, top_k, guided, fit)`` -> gallery items
  (JPEG + caption), top-5 predictions, layer table, manifest, labelled gallery JPEG, ZIP (maps
  as greyscale PNG, the explained image, manifest)
* ``predict(image, model)`` -> top-5 predictions
* ``layers(model, mode)`` -> the resolved first/middle/last layers (table)
* ``models()`` -> the offered model names
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

import xai
from xai.errors import XaiError

from . import gate, insights, service, storage
from .blocks import GatedBlocks
from .service import (
    DEFAULT_TOP_K,
    LAYER_HEADERS,
    MAX_TOP_K,
    METHOD_CHOICES,
    MODEL_TITLES,
    TOP1,
)

log = logging.getLogger("xai_app")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
MAX_FILE_SIZE = gate.MAX_IMAGE_BYTES  # uploads; data: URLs and URLs get the same limit
QUEUE_SIZE = 32
TITLE = "xai · where does the classifier look?"

INTRO = """\
# Where does the classifier look?
Grad-CAM, Grad-CAM++, Eigen-CAM and XGrad-CAM at the **first, middle and last** layers of an
ImageNet classifier, from one forward and one backward pass. Upload an image (or pick an
example), choose a model and press **Explain**. Rows are layers, columns are methods; every
caption names the method, the depth, the module and its feature-map size.
"""

CSS = """
#xai-gallery .grid-wrap { max-height: none !important; overflow-y: visible !important; }
#xai-gallery .thumbnail-item { aspect-ratio: auto !important; height: auto !important;
  display: flex; flex-direction: column; }
#xai-gallery .thumbnail-lg > img { aspect-ratio: 1 / 1; height: auto !important; }
#xai-gallery .caption-label { position: static !important; max-width: 100% !important;
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  opacity: 1 !important; border: 0 !important; border-radius: 0 !important;
  font-size: 12px !important; line-height: 1.3; text-align: center; }
"""

CLIENT_SNIPPET = """\
```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860")          # or a Space id, "owner/space"
gallery, top5, table, manifest, sheet, zip_path = client.predict(
    handle_file("examples/cat.png"), "efficientnet_lite0", api_name="/explain")
print(top5["label"], [item["caption"] for item in gallery])
```
All four endpoints: `explain(image, model, mode, methods, target, top_k, guided, fit)`,
`predict(image, model)`, `layers(model, mode)`, `models()`. Run
`python examples/client.py --help` for a script that saves the overlays to a folder.
"""


def _concurrency() -> int:
    try:
        return max(1, int(os.environ.get("XAI_CONCURRENCY", "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def _as_user_error(action: str) -> Iterator[None]:
    try:
        yield
    except gr.Error:
        raise
    except XaiError as exc:
        log.info("%s refused: %s", action, exc)
        # Gradio renders an error message as HTML: user text in it must stay text
        raise gr.Error(html.escape(str(exc), quote=False), title=f"Cannot {action}",
                       print_exception=False) from None
    except Exception:
        log.exception("unexpected error in %s", action)
        raise gr.Error(f"Something went wrong while trying to {action}; the error was "
                       "logged. Try another image or model.",
                       title="Internal error", print_exception=False) from None


def user_errors(action: str) -> Callable[[Callable], Callable]:
    """Turn :class:`xai.XaiError` into one clear ``gr.Error``; log anything unexpected (also
    while a generator endpoint runs)."""

    def decorate(fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def steps(*args: Any, **kwargs: Any) -> Any:
                with _as_user_error(action):
                    yield from fn(*args, **kwargs)
            return steps

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _as_user_error(action):
                return fn(*args, **kwargs)
        return wrapper
    return decorate


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


# --- endpoint functions (their parameter names are the API's argument names) -------------

@user_errors("explain the image")
def explain(image: str | None, model: str, mode: str, methods: list[str], target: str,
            top_k: float | None, guided: bool, fit: str, progress: gr.Progress = gr.Progress()
            ) -> Iterator[tuple[Any, dict[str, float], list[list[str]], dict, Any, Any]]:
    """Explain one image: 4 methods x first/middle/last layer (12 panels per target).

    target: "top-1", a class index or label; top_k > 1 explains the k most probable classes
    (target then ignored). mode: "stages" or "convs". fit: "crop" or "full". Returns gallery
    items (image, caption), top-5 predictions, layer table, manifest, labelled sheet, ZIP:
    the gallery first (the two files None), then everything once the files are written.
    """
    run = service.explain(model, image, mode=mode, methods=methods, target=target,
                          top_k=top_k, guided=guided, fit=fit, finish=False,
                          on_step=lambda f, text: progress(f, desc=text))
    try:
        rows = service.layer_rows(run.result.layers)
        scores = service.label_scores(run.result.predictions, run.result.labels)
        yield run.gallery, scores, rows, run.manifest, None, None
        run.finish()
        yield run.gallery, scores, rows, run.manifest, str(run.sheet), str(run.zip)
    finally:
        run.close()  # a client that left before the files: the budget may take the folder


@user_errors("predict")
def predict(image: str | None, model: str, progress: gr.Progress = gr.Progress()
            ) -> dict[str, float]:
    """Top-5 ImageNet predictions of ``model`` for ``image`` (the model's centre crop)."""
    if image is None:
        raise service.ImageError("no image: upload one first")
    name = service.check_model(model)
    if name not in service.CACHE:
        progress(0.1, desc=f"loading {name} (first use)")
    return service.label_scores(service.predict(name, image), service.model_labels(name))


@user_errors("resolve the layers")
def layers(model: str, mode: str) -> list[list[str]]:
    """The first/middle/last layers ``model`` resolves to in ``mode`` ("stages" or "convs")."""
    return service.layer_rows(service.resolved_layers(model, mode))


def models() -> list[str]:
    """The model names this app offers (the bundled offline one first)."""
    return service.offered_models()


# --- UI-only helpers (private endpoints) ------------------------------------------------

def _predict_if_image(image: str | None, model: str,
                      progress: gr.Progress = gr.Progress()) -> Any:
    if image is None:
        return gr.skip()
    return predict(image, model, progress)


def _target_choices(predictions: dict | None, current: str | None) -> Any:
    """Offer "top-1" and the top-5 labels as targets; keep the current choice if still there."""
    scores = predictions if isinstance(predictions, dict) else {}  # gr.Label: {label: p}
    choices: list[tuple[str, str]] = [("top-1", TOP1)]
    for label, p in scores.items():
        choices.append((f"{label} ({p:.0%})", str(label)))
    values = {v for _, v in choices}
    return gr.Dropdown(choices=choices, value=current if current in values else TOP1)


def _gallery_columns(methods: list[str] | None, guided: bool) -> Any:
    """One gallery column per method (Guided Grad-CAM adds one), so rows are layers."""
    return gr.Gallery(columns=max(1, len(methods or [])) + int(bool(guided)))


@dataclass
class Inputs:
    """The input widgets, for tabs that reuse them (the embeddings view)."""

    image: gr.Image
    model: gr.Dropdown
    mode: gr.Radio
    methods: gr.CheckboxGroup
    target: gr.Dropdown
    top_k: gr.Number
    guided: gr.Checkbox
    fit: gr.Radio

    def as_list(self) -> list[gr.components.Component]:
        return [self.image, self.model, self.mode, self.methods, self.target, self.top_k,
                self.guided, self.fit]


EMBEDDINGS_INTRO = """### What each layer represents, and which map to believe
**Embedding maps**: each position's feature vector on the layer's first three principal
components (R, G, B; one scale), aligned with the image. **Channels**: the 16 most active
channels per layer. **Verdicts**, one per panel: *faithful* (16-px cells removed most / least
relevant first, blur fill, LeRF − MoRF of the target logit with a 90 % interval, against a random
map, a smooth random map and an edge map), *class-sensitive* (the map changes for another class),
*model-sensitive* (the sanity check at the panel's own depth), *stable* (small input noise);
where they disagree the table says so."""


@user_errors("compute the embeddings")
def embeddings(image: str | None, model: str, mode: str, methods: list[str], target: str,
               fit: str, steps: float, sanity: bool, progress: gr.Progress = gr.Progress()
               ) -> tuple[Any, list[tuple[Any, str]], list[list[str]], str, list]:
    """Embedding maps, top channels, the verdict table and text, the panels with badges."""
    run = insights.insights(model, image, mode=mode, methods=methods, target=target, fit=fit,
                            n_steps=steps, sanity=sanity,
                            progress=lambda f, text: progress(f, desc=text))
    badges = insights.panel_pictures(run)
    figure, *pics = storage.save_pictures([run.figure] + [g for g, _ in run.grids + badges])
    captions = [c for _, c in run.grids + badges]
    shown = [(str(path), c) for path, c in zip(pics, captions, strict=True)]
    return (str(figure), shown[:len(run.grids)], insights.verdict_rows(run.verdicts),
            insights.verdict_markdown(run), shown[len(run.grids):])


def embeddings_tab(inputs: Inputs) -> None:
    """The embeddings / faithfulness view of the same first, middle and last layers."""
    limit = _concurrency()
    with gr.Tab("Embeddings & faithfulness", id="embeddings"):
        gr.Markdown(EMBEDDINGS_INTRO)
        with gr.Row():
            steps = gr.Slider(4, insights.MAX_FAITH_STEPS, value=insights.DEFAULT_FAITH_STEPS,
                              step=1, label="Removal steps (16-px cells)", min_width=200)
            sanity = gr.Checkbox(value=True, label="Sanity check", min_width=120)
            go = gr.Button("Compute", variant="secondary", elem_id="xai-embeddings-run")
        figure = gr.Image(label="Embedding maps (PC1-3 as RGB)", type="filepath", format="png",
                          interactive=False, elem_id="xai-embedding-maps")
        channels = gr.Gallery(label="Most active channels per layer", columns=3, format="png",
                              object_fit="contain", height="auto", interactive=False)
        badges = gr.Gallery(label="Which map to believe: every panel with its verdict (★ best)",
                            columns=6, format="png", object_fit="contain", height="auto",
                            interactive=False, elem_id="xai-verdict-panels")
        table = gr.Dataframe(headers=insights.FAITH_HEADERS, interactive=False, wrap=True,
                             label="Verdict per panel, baselines below", elem_id="xai-faith")
        verdicts = gr.Markdown(elem_id="xai-sanity")
    go.click(embeddings, inputs=[inputs.image, inputs.model, inputs.mode, inputs.methods,
                                 inputs.target, inputs.fit, steps, sanity],
             outputs=[figure, channels, table, verdicts, badges], api_name="embeddings",
             concurrency_id="compute", concurrency_limit=limit)


def _examples() -> list[list[Any]]:
    """Example rows; the cat + coffee sheet explains the espresso cup (target) on the whole
    image, to show that the target moves the maps."""
    methods = list(xai.DEFAULT_METHODS)
    rows = []
    for name, target, fit in (("cat", TOP1, "crop"), ("coffee", TOP1, "crop"),
                              ("rocket", TOP1, "crop"), ("cat_and_coffee", "espresso", "full")):
        path = EXAMPLES_DIR / f"{name}.png"
        if path.is_file():
            rows.append([str(path), service.OFFERED_MODELS[0], "stages", methods, target,
                         DEFAULT_TOP_K, False, fit])
    return rows


def _cache_mode() -> tuple[bool, str | None]:
    """XAI_CACHE_EXAMPLES: "lazy" (default), "eager" or "off"."""
    value = os.environ.get("XAI_CACHE_EXAMPLES", "lazy").strip().lower()
    if value in ("off", "0", "false", "no"):
        return False, None
    return True, "eager" if value == "eager" else "lazy"


def build_demo() -> gr.Blocks:
    """The app's Blocks, queued; launch it with :func:`launch`."""
    offered = service.offered_models()
    limit = _concurrency()
    # run folders are served where they are: Gradio copies none of them into its cache
    gr.set_static_paths([storage.STORE.root])
    with GatedBlocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600),
                     fill_width=True) as demo:
        storage.STORE.uploads = demo.upload_file_set  # uploads count against the budget
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                image = gr.Image(label="Image", type="filepath", image_mode=None, format="png",
                                 sources=["upload", "clipboard", "webcam"], height=240,
                                 elem_id="xai-image")
                _clear_image_errors(image)
                examples_slot = gr.Column()
                model = gr.Dropdown(
                    choices=[(MODEL_TITLES.get(n, n), n) for n in offered], value=offered[0],
                    label="Model", allow_custom_value=True, elem_id="xai-model",
                    info="The bundled EfficientNet-Lite0 works offline; others download "
                         "their ImageNet weights once.")
                mode = gr.Radio(choices=[("stages", "stages"), ("conv layers", "convs")],
                                value="stages", label="Depth mode",
                                info="stages: feature-map levels; conv layers: the N-th conv "
                                     "that runs, as in the reference study")
                methods = gr.CheckboxGroup(choices=list(METHOD_CHOICES),
                                           value=list(xai.DEFAULT_METHODS), label="Methods")
                with gr.Row():
                    target = gr.Dropdown(choices=[("top-1", TOP1)], value=TOP1,
                                         allow_custom_value=True, label="Target class",
                                         info="top-1 or one of the model's top-5",
                                         min_width=160)
                    top_k = gr.Number(value=DEFAULT_TOP_K, precision=0, minimum=1,
                                      maximum=MAX_TOP_K, label="Top-k", min_width=100,
                                      info="k > 1: one block per class (multi-object)")
                with gr.Row():
                    guided = gr.Checkbox(value=False, label="Guided Grad-CAM", min_width=120)
                    fit = gr.Radio(choices=[("centre crop", "crop"), ("whole image", "full")],
                                   value="crop", label="Fit", min_width=160)
                run = gr.Button("Explain", variant="primary", elem_id="xai-run")
            with gr.Column(scale=3, min_width=480):
                with gr.Tabs():
                    with gr.Tab("Gallery", id="gallery"):
                        gallery = gr.Gallery(label="Rows: first / middle / last layer · "
                                                   "columns: methods",
                                             columns=len(METHOD_CHOICES), format="jpeg",
                                             object_fit="contain", height="auto",
                                             elem_id="xai-gallery", interactive=False,
                                             buttons=["download", "fullscreen"])
                    with gr.Tab("Labelled sheet", id="sheet"):
                        sheet = gr.Image(label="The whole gallery as one labelled picture",
                                         show_label=False, type="filepath", format="jpeg",
                                         interactive=False,
                                         buttons=["download", "fullscreen"])
                    with gr.Tab("Layers", id="layers"):
                        table = gr.Dataframe(headers=LAYER_HEADERS, label="Resolved layers",
                                             interactive=False, wrap=True,
                                             elem_id="xai-layers")
                    with gr.Tab("Manifest", id="manifest"):
                        manifest = gr.JSON(label="manifest.json")
                    inputs = Inputs(image, model, mode, methods, target, top_k, guided, fit)
                    embeddings_tab(inputs)
                    with gr.Tab("API", id="api"):
                        gr.Markdown(CLIENT_SNIPPET)
                with gr.Row(equal_height=False):
                    predictions = gr.Label(num_top_classes=5, label="Top-5 predictions",
                                           elem_id="xai-predictions", scale=1)
                    with gr.Column(scale=1):
                        sheet_file = gr.File(label="Download: labelled gallery (JPEG)",
                                             elem_id="xai-sheet-file", interactive=False)
                        zip_file = gr.File(label="Download: maps (PNG) + image + manifest (ZIP)",
                                           elem_id="xai-zip", interactive=False)
        with examples_slot:
            cache, cache_mode = _cache_mode()
            gr.Examples(examples=_examples(), inputs=inputs.as_list(),
                        outputs=[gallery, predictions, table, manifest, sheet_file, zip_file],
                        fn=explain, cache_examples=cache, cache_mode=cache_mode,
                        visible_columns=[0], label="Examples (click one)",
                        examples_per_page=8)

        explained = run.click(
            explain, inputs=inputs.as_list(),
            outputs=[gallery, predictions, table, manifest, sheet_file, zip_file],
            api_name="explain", concurrency_id="compute", concurrency_limit=limit)
        explained.success(_target_choices, [predictions, target], target, queue=False,
                          api_visibility="private")
        explained.success(_gallery_columns, [methods, guided], gallery, queue=False,
                          api_visibility="private")
        sheet_file.change(lambda f: f, sheet_file, sheet, queue=False, api_visibility="private")
        image.upload(predict, [image, model], predictions, api_name="predict",
                     concurrency_id="compute", concurrency_limit=limit,
                     show_progress="minimal").success(
            _target_choices, [predictions, target], target, queue=False,
            api_visibility="private")
        model.change(_predict_if_image, [image, model], predictions, api_visibility="private",
                     concurrency_id="compute", concurrency_limit=limit,
                     show_progress="minimal").success(
            _target_choices, [predictions, target], target, queue=False,
            api_visibility="private")
        gr.on([demo.load, model.change, mode.change], layers, [model, mode], table,
              api_name="layers", concurrency_id="compute", concurrency_limit=limit,
              show_progress="minimal")
        gr.api(models, api_name="models", queue=False)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=limit)
    return demo


def launch(demo: gr.Blocks, **kwargs: Any) -> Any:
    """``demo.launch`` with the app's limits: upload size, no monitoring, no run history."""
    options: dict[str, Any] = dict(max_file_size=MAX_FILE_SIZE, enable_monitoring=False,
                                   show_error=False, run_history=False,
                                   footer_links=["api", "gradio"], css=CSS)
    options.update(kwargs)
    storage.STORE.watch()  # the budget also holds between runs (uploads alone)
    return demo.launch(**options)
