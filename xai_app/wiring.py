"""The app's events: what runs when the user (or a client) acts, so that after any path
(upload, example click, Explain, model or fit change) the columns, the targets and the
predictions on screen belong to the image and settings on screen."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

import xai

from . import events, service
from .events import Inputs
from .ui_text import SCROLL_TO_RESULTS

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def example_rows() -> list[list[Any]]:
    """Example rows; the cat + coffee sheet explains the espresso cup (target) on the whole
    image, to show that the target moves the maps."""
    methods = list(xai.DEFAULT_METHODS)
    rows = []
    top1 = service.TOP1
    for name, target, fit in (("cat", top1, "crop"), ("coffee", top1, "crop"),
                              ("rocket", top1, "crop"), ("cat_and_coffee", "espresso", "full")):
        path = EXAMPLES_DIR / f"{name}.png"
        if path.is_file():
            rows.append([str(path), service.OFFERED_MODELS[0], "stages", methods, target,
                         service.DEFAULT_TOP_K, False, fit, 0.5, "jet", "none", ""])
    return rows


def _cache_mode() -> tuple[bool, str | None]:
    """XAI_CACHE_EXAMPLES: "lazy" (default), "eager" or "off"."""
    value = os.environ.get("XAI_CACHE_EXAMPLES", "lazy").strip().lower()
    if value in ("off", "0", "false", "no"):
        return False, None
    return True, "eager" if value == "eager" else "lazy"


def _examples(inputs: Inputs, outputs: list[Any]) -> gr.Examples:
    cache, cache_mode = _cache_mode()
    with inputs.examples_slot:
        return gr.Examples(examples=example_rows(), inputs=inputs.as_list(), outputs=outputs,
                           fn=events.explain_example, cache_examples=cache,
                           cache_mode=cache_mode,
                           visible_columns=[0], label="Examples (click one)",
                           examples_per_page=8)


COMPUTE: dict[str, Any] = {"concurrency_id": "compute"}
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


def wire(demo: gr.Blocks, inputs: Inputs, run: gr.Button, out: dict[str, Any], limit: int,
         offered: list[str]) -> None:
    """Every event of the app; named endpoints: explain, predict, layers, models (and the
    tabs' embeddings and compare)."""
    outputs = [out["gallery"], out["predictions"], out["table"], out["manifest"],
               out["sheet_file"], out["zip"], out["raw"]]
    out["shown"] = gr.State(None)  # the gallery's column count now
    compute = dict(COMPUTE, concurrency_limit=limit)
    _explain(inputs, run, out, outputs, compute)
    _image(demo, inputs, out, outputs, compute)
    _model(demo, inputs, out, outputs, compute, gr.State(offered[0]))
    # API-only endpoints (a hidden button carries /predict: the UI predicts on image change)
    hidden = gr.Button(visible=False)
    hidden.click(events.predict, [inputs.image, inputs.model, inputs.fit], out["predictions"],
                 api_name="predict", **compute)
    gr.api(events.models, api_name="models", queue=False)


def _explain(inputs: Inputs, run: gr.Button, out: dict[str, Any], outputs: list[Any],
             compute: dict[str, Any]) -> None:
    """Explain and the examples: the old results stay in view while queued (the header shows
    the progress). The button's answer lays out the gallery and its header itself (no second
    round trip while the panels load); ``/explain`` is the same run without them."""
    run.click(None, js=SCROLL_TO_RESULTS, queue=False, **PRIVATE)
    laid_out = [out["header"], out["shown"]]
    run.click(events.explain_on_screen, [*inputs.as_list(), out["shown"]],
              outputs + laid_out, show_progress="full", show_progress_on=[out["header"]],
              **compute, **PRIVATE)
    api = gr.Button(visible=False)  # /explain: the API's gallery, without the page's layout
    api.click(events.explain, inputs.as_list(), outputs, api_name="explain", **compute)
    examples = _examples(inputs, outputs)
    examples.load_input_event.then(None, js=SCROLL_TO_RESULTS, queue=False, **PRIVATE)
    show_run_after(examples.load_input_event, out)
    files = [out["sheet_file"], out["zip"], out["raw"]]
    out["manifest"].change(events.run_files, out["manifest"], files, concurrency_id="files",
                           **PRIVATE)
    # the sheet tab shows the downloadable sheet: copied in the page, no server round trip
    out["sheet_file"].change(None, out["sheet_file"], out["sheet"], js="(f) => f",
                             queue=False, **PRIVATE)
    hidden = gr.Button(visible=False)  # /files: the API's way to the background-built files
    hidden.click(events.files, out["manifest"], files, api_name="files",
                 concurrency_id="files")


def show_run_after(event: Any, out: dict[str, Any]) -> None:
    """After ``event`` (an example, a clear, a model switch: anything but Explain that changes
    the run on screen), the gallery's columns and header from that run."""
    event.then(events.show_run, [out["manifest"], out["shown"]],
               [out["gallery"], out["header"], out["shown"]], queue=False, **PRIVATE)


def _image(demo: gr.Blocks, inputs: Inputs, out: dict[str, Any], outputs: list[Any],
           compute: dict[str, Any]) -> None:
    """A new image: its own top-5 (with the fit on screen) and targets; an upload or a clear
    also clears the previous image's results. A new fit: the top-5 again."""
    image, model, fit, target = inputs.image, inputs.model, inputs.fit, inputs.target
    refresh = [image, model, fit, target], [out["predictions"], target]
    image.change(events.on_image, *refresh, show_progress="minimal", **compute, **PRIVATE)
    show_run_after(image.upload(events.cleared, None, outputs, queue=False, **PRIVATE), out)
    show_run_after(image.clear(events.cleared, None, outputs, queue=False, **PRIVATE), out)
    fit.input(events.on_settings, *refresh, show_progress="minimal", **compute, **PRIVATE)
    demo.load(events.on_settings, *refresh, queue=False, **PRIVATE)
    target.input(events.check_target, [target, model], target, queue=False, **PRIVATE)
    target.focus(events.all_targets, [out["predictions"], model, target], target, queue=False,
                 **PRIVATE)


def _model(demo: gr.Blocks, inputs: Inputs, out: dict[str, Any], outputs: list[Any],
           compute: dict[str, Any], last_good: gr.State) -> None:
    """A model change: loaded (or back to the last one that worked, in one sentence), then
    its predictions, targets, layers and layer names."""
    model, mode = inputs.model, inputs.mode
    switched = model.change(events.switch_model, [model, last_good],
                            [model, last_good, *outputs], show_progress="minimal", **compute,
                            **PRIVATE)
    switched.then(events.on_settings, [inputs.image, model, inputs.fit, inputs.target],
                  [out["predictions"], inputs.target], show_progress="minimal", **compute,
                  **PRIVATE)
    switched.then(events.layers, [model, mode], out["table"], show_progress="minimal",
                  api_name="layers_of_new_model", **compute, **PRIVATE)
    switched.then(events.layer_names, [model, mode], inputs.layer, queue=False, **PRIVATE)
    show_run_after(switched, out)
    gr.on([demo.load, mode.change], events.layers, [model, mode], out["table"],
          api_name="layers", show_progress="minimal", **compute)
    gr.on([demo.load, mode.change], events.layer_names, [model, mode], inputs.layer,
          queue=False, **PRIVATE)
