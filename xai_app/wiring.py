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
    with inputs.examples_slot:  # type: ignore[attr-defined]
        return gr.Examples(examples=example_rows(), inputs=inputs.as_list(), outputs=outputs,
                           fn=events.explain, cache_examples=cache, cache_mode=cache_mode,
                           visible_columns=[0], label="Examples (click one)",
                           examples_per_page=8)


def wire(demo: gr.Blocks, inputs: Inputs, run: gr.Button, out: dict[str, Any], limit: int,
         offered: list[str]) -> None:
    """Every event of the app; named endpoints: explain, predict, layers, models (and the
    tabs' embeddings and compare)."""
    outputs = [out["gallery"], out["predictions"], out["table"], out["manifest"],
               out["sheet_file"], out["zip"], out["raw"]]
    compute: dict[str, Any] = {"concurrency_id": "compute", "concurrency_limit": limit}
    private: dict[str, Any] = {"api_visibility": "private"}
    image, model, fit, target = inputs.image, inputs.model, inputs.fit, inputs.target
    last_good = gr.State(offered[0])

    # Explain: the old results stay in view while queued; the header shows the progress
    run.click(None, js=SCROLL_TO_RESULTS, queue=False, **private)
    run.click(events.explain, inputs.as_list(), outputs, api_name="explain",
              show_progress="full", show_progress_on=[out["header"]], **compute)
    examples = _examples(inputs, outputs)
    examples.load_input_event.then(None, js=SCROLL_TO_RESULTS, queue=False, **private)
    # the gallery's columns and header come from the run on screen, however it got there
    out["manifest"].change(events.show_run, out["manifest"], [out["gallery"], out["header"]],
                           queue=False, **private)
    out["sheet_file"].change(lambda f: f, out["sheet_file"], out["sheet"], queue=False,
                             **private)

    # a new image: its own top-5 (with the fit on screen) and targets; an upload or a clear
    # also clears the results of the previous image
    image.change(events.on_image, [image, model, fit, target], [out["predictions"], target],
                 show_progress="minimal", **compute, **private)
    image.upload(events.cleared, None, outputs, queue=False, **private)
    image.clear(events.cleared, None, outputs, queue=False, **private)
    fit.input(events.on_settings, [image, model, fit, target], [out["predictions"], target],
              show_progress="minimal", **compute, **private)
    demo.load(events.on_settings, [image, model, fit, target], [out["predictions"], target],
              queue=False, **private)
    target.input(events.check_target, [target, model], target, queue=False, **private)

    # a model change: loaded (or back to the last one that worked, in one sentence), then
    # its predictions, targets, layers and layer names
    switched = model.change(events.switch_model, [model, last_good],
                           [model, last_good, *outputs], show_progress="minimal", **compute,
                           **private)
    switched.then(events.on_settings, [image, model, fit, target],
                  [out["predictions"], target], show_progress="minimal", **compute, **private)
    switched.then(events.layers, [model, inputs.mode], out["table"], show_progress="minimal",
                  api_name="layers_of_new_model", **compute, **private)
    switched.then(events.layer_names, [model, inputs.mode], inputs.layer, queue=False,
                  **private)
    gr.on([demo.load, inputs.mode.change], events.layers, [model, inputs.mode], out["table"],
          api_name="layers", show_progress="minimal", **compute)
    gr.on([demo.load, inputs.mode.change], events.layer_names, [model, inputs.mode],
          inputs.layer, queue=False, **private)

    # API-only endpoints (a hidden button carries /predict: the UI predicts on image change)
    hidden = gr.Button(visible=False)
    hidden.click(events.predict, [image, model, fit], out["predictions"], api_name="predict",
                 **compute)
    gr.api(events.models, api_name="models", queue=False)
