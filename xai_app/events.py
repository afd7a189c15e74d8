"""The app's endpoint functions (their parameter names are the API's argument names) and the
UI's private event handlers, which keep the targets, predictions, columns and outputs on
screen consistent with the image and settings on screen."""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

import xai
from xai.errors import TargetError, XaiError

from . import choices, downloads, heap, inline_gallery, service

log = logging.getLogger("xai_app")
N_OUTPUTS = 7  # gallery, predictions, layer table, manifest, sheet, ZIP, raw maps
PROGRESS_AFTER_S = 0.25  # a run's steps are shown once it has taken this long (each message
# makes the page re-read every input's state: ~10 ms each, for a run that is done at once)


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


def _late_steps(progress: gr.Progress, model: object) -> Callable[[float, str], None]:
    """``progress`` for the steps of a run that has taken :data:`PROGRESS_AFTER_S` (all of
    them while a model loads for the first time)."""
    start = time.perf_counter() - (PROGRESS_AFTER_S if str(model).strip() not in service.CACHE
                                   else 0.0)

    def step(fraction: float, text: str) -> None:
        if time.perf_counter() - start >= PROGRESS_AFTER_S:
            progress(fraction, desc=text)
    return step


def _look(opacity: object, colormap: object) -> dict[str, Any]:
    if colormap not in choices.COLORMAPS:
        raise xai.XaiError(f"colormap must be one of {', '.join(choices.COLORMAPS)}")
    if isinstance(opacity, bool) or not isinstance(opacity, (int, float)) or not (
            0.0 <= opacity <= 1.0):
        raise xai.XaiError("opacity must be a number from 0 to 1")
    return {"alpha": float(opacity), "colormap": str(colormap)}


def _explained(image: str | None, model: str, mode: str, methods: list[str], target: str,
               top_k: float | None, guided: bool, fit: str, opacity: float, colormap: str,
               layer_row: str, layer: str, progress: gr.Progress) -> tuple:
    """One run with its previews written, its files started in the background: the run,
    top-5 and the layer table."""
    look, depths = _look(opacity, colormap), choices.rows(layer_row, layer)
    try:
        run = heap.confined(service.explain, model, image, mode=mode, methods=methods,
                            target=target, top_k=top_k, guided=guided, fit=fit, finish=False,
                            depths=depths, look=look, on_step=_late_steps(progress, model))
    except TargetError as exc:
        hint = choices.did_you_mean(target, service.model_labels(str(model).strip()))
        raise TargetError(f"{exc}.{hint}" if hint else str(exc)) from None
    try:
        rows = service.layer_rows(run.result.layers)
        scores = service.label_scores(run.result.predictions, run.result.labels)
        downloads.build_later(run)
    except BaseException:
        run.close()  # the budget may take the folder
        raise
    return run, scores, rows


@user_errors("explain the image")
def explain(image: str | None, model: str, mode: str, methods: list[str], target: str,
            top_k: float | None, guided: bool, fit: str, opacity: float = 0.5,
            colormap: str = "jet", layer_row: str = "none", layer: str = "",
            progress: gr.Progress = gr.Progress()) -> tuple:
    """Explain one image: the methods x first/middle/last layer (one block per target).

    target: "top-1", a class index or label; top_k > 1 explains the k most probable classes.
    mode: "stages" or "convs"; fit: "crop" or "full"; opacity (0-1) and colormap style the
    overlays; layer (a module name or conv:N) replaces the row layer_row (first, middle,
    last) or adds one (extra). Returns gallery items (image, caption), top-5, layer table and
    manifest as soon as the maps exist; the labelled sheet, the ZIP (PNG maps, float32 .npy
    maps at image and feature-map size, image, manifest) and the feature-map .npy files are
    written in the background: ``/files`` with the manifest's ``run`` returns them (these
    three outputs are None here).
    """
    run, scores, rows = _explained(image, model, mode, methods, target, top_k, guided, fit,
                                   opacity, colormap, layer_row, layer, progress)
    return run.gallery, scores, rows, run.manifest, None, None, None


@user_errors("explain the image")
def explain_on_screen(image: str | None, model: str, mode: str, methods: list[str],
                      target: str, top_k: float | None, guided: bool, fit: str,
                      opacity: float, colormap: str, layer_row: str, layer: str,
                      shown: int | None, progress: gr.Progress = gr.Progress()) -> tuple:
    """The Explain button: :func:`explain`'s answer with the panels inside it (no file
    request per panel, up to :data:`inline_gallery.MAX_INLINE_BYTES`), the gallery laid out
    for the run (its columns, when they change) and its header."""
    run, scores, rows = _explained(image, model, mode, methods, target, top_k, guided, fit,
                                   opacity, colormap, layer_row, layer, progress)
    items = inline_gallery.items(run.gallery, run.previews)
    gallery, header, cols = show_run(run.manifest, shown, items)
    return gallery, scores, rows, run.manifest, None, None, None, header, cols


def explain_example(*args: Any, progress: gr.Progress = gr.Progress()) -> tuple:
    """An example row's whole answer, files included (examples are cached once: the wait for
    the files costs nothing later, and a cached answer needs no run on disk)."""
    gallery, scores, rows, manifest, *_ = explain(*args, progress=progress)
    return (gallery, scores, rows, manifest, *files(manifest))


@user_errors("fetch the run's files")
def files(manifest: dict | None) -> tuple[str, str, list[str]]:
    """The labelled sheet, the ZIP and the feature-map .npy files of an /explain run (its
    manifest, or {"run": name}); waits while they are being written."""
    if not manifest or not isinstance(manifest, dict) or not manifest.get("run"):
        raise downloads.FilesError("no run: explain an image first")
    sheet, archive, raw = downloads.files(manifest["run"])
    return str(sheet), str(archive), [str(p) for p in raw]


def run_files(manifest: dict | None) -> tuple[Any, Any, Any]:
    """The UI's download slots for the run on screen (nothing while there is none)."""
    if not manifest or not isinstance(manifest, dict) or not manifest.get("run"):
        return None, None, None
    try:
        sheet, archive, raw = downloads.files(manifest["run"], start=False)
    except Exception:  # gone (the budget), or not written: the slots stay empty
        return None, None, None
    return str(sheet), str(archive), [str(p) for p in raw]


@user_errors("predict")
def predict(image: str | None, model: str, fit: str = "crop",
            progress: gr.Progress = gr.Progress()) -> dict[str, float]:
    """Top-5 ImageNet predictions of ``model`` for ``image`` with ``fit`` ("crop": the
    model's centre crop, "full": the whole image), as Explain sees it."""
    if image is None:
        raise service.ImageError("no image: upload one first")
    name = service.check_model(model)
    if name not in service.CACHE:
        progress(0.1, desc=f"loading {name} (first use)")
    return service.label_scores(heap.confined(service.predict, name, image, fit),
                                service.model_labels(name))


@user_errors("resolve the layers")
def layers(model: str, mode: str) -> list[list[str]]:
    """The first/middle/last layers ``model`` resolves to in ``mode`` ("stages" or "convs")."""
    return service.layer_rows(heap.confined(service.resolved_layers, model, mode))


def models() -> list[str]:
    """The model names this app offers (the bundled offline one first)."""
    return service.offered_models()


@dataclass
class Inputs:
    """The input widgets, in /explain's argument order (other tabs reuse them)."""

    image: gr.Image
    model: gr.Dropdown
    mode: gr.Radio
    methods: gr.CheckboxGroup
    target: gr.Dropdown
    top_k: gr.Number
    guided: gr.Checkbox
    fit: gr.Radio
    opacity: gr.Slider
    colormap: gr.Dropdown
    layer_row: gr.Dropdown
    layer: gr.Dropdown
    examples_slot: gr.Column  # where the examples go (below the image)

    def as_list(self) -> list[gr.components.Component]:
        return [self.image, self.model, self.mode, self.methods, self.target, self.top_k,
                self.guided, self.fit, self.opacity, self.colormap, self.layer_row, self.layer]


# --- UI-only handlers (private endpoints) ---------------------------------------------

def _targets(scores: Any, model: str, current: Any, keep: str) -> Any:
    # the image's top-5 only: every class is added when the list is opened (all_targets);
    # the page copies each input's whole state at every step of every event, and a list of
    # every class made that ~70 ms of each Explain
    opts, value = choices.target_choices(scores, service.model_labels(model), current, keep,
                                         every=False)
    return gr.Dropdown(choices=opts, value=value, info=TARGET_INFO)


def all_targets(scores: Any, model: str, target: str) -> Any:
    """The target list opened: the image's top-5 first, then every class to search."""
    opts, _ = choices.target_choices(scores, service.model_labels(str(model).strip()), target,
                                     "any")
    return gr.Dropdown(choices=opts)


TARGET_INFO = "top-1, or type to search all classes (the image's top-5 first)"


def on_image(image: str | None, model: str, fit: str, target: str,
             progress: gr.Progress = gr.Progress()) -> tuple[Any, Any]:
    """A new image (upload, paste, example): its top-5 (with the fit on screen) and targets;
    a chosen class stays only if it is among the new image's top-5."""
    if image is None:
        return {}, _targets({}, model, target, "top5")
    scores = predict(image, model, fit, progress)
    return scores, _targets(scores, model, target, "top5")


def on_settings(image: str | None, model: str, fit: str, target: str,
                progress: gr.Progress = gr.Progress()) -> tuple[Any, Any]:
    """Another fit or model: the top-5 again; any class of the model stays the target."""
    scores = predict(image, model, fit, progress) if image is not None else {}
    return scores, _targets(scores, model, target, "any")


def cleared() -> tuple:
    """Empty outputs (gallery, predictions, table, manifest, sheet, ZIP, raw maps)."""
    return [], {}, None, None, None, None, None


def switch_model(model: str, last_good: str) -> tuple:
    """Load the chosen model. If it cannot be loaded: one sentence (a warning), back to the
    last model that worked, and the outputs cleared. Returns (dropdown, last good, outputs)."""
    log.info("model switch: %r (last working: %r)", model, last_good)
    try:
        name = service.check_model(model)
        heap.confined(service.CACHE.get, name)
    except Exception as exc:  # any failure: back to the model that works
        if not isinstance(exc, XaiError):
            log.exception("loading %r failed", model)
        gr.Warning(choices.load_failure(str(model).strip(), last_good, exc), title="Model")
        return (gr.Dropdown(value=last_good, choices=choices.model_choices()), last_good,
                *cleared())
    return (gr.Dropdown(choices=choices.model_choices()), name,
            *(gr.skip() for _ in range(N_OUTPUTS)))


def layer_names(model: str, mode: str) -> Any:
    """The layer list of the model on screen, for the "any layer" box."""
    try:
        names = heap.confined(choices.layer_choices, service.check_model(model), mode)
    except XaiError:
        names = []
    return gr.Dropdown(choices=names)


def check_target(target: str, model: str) -> Any:
    """A typed class that is not one: the dropdown's hint says the closest classes."""
    hint = choices.did_you_mean(target, service.model_labels(str(model).strip()))
    return gr.Dropdown(info=f"no class named “{target[:40]}”.{hint}" if hint else TARGET_INFO)


def show_run(manifest: dict | None, shown: int | None, items: list | None = None
             ) -> tuple[Any, str, int]:
    """Gallery columns and header from the run on screen (Explain, an example, a clear); the
    gallery is only re-laid out when its column count ``shown`` changes. With ``items`` (the
    Explain answer's panels) the gallery gets them too; without, it keeps its own."""
    cols = choices.columns(manifest)
    if cols == shown:
        gallery = gr.skip() if items is None else items
    else:  # an update, not a component: the items are processed once, by the page's gallery
        gallery = gr.update(columns=cols) if items is None else gr.update(value=items,
                                                                          columns=cols)
    return gallery, choices.header_html(manifest), cols


__all__ = ["Inputs", "explain", "files", "layers", "models", "predict", "user_errors"]
