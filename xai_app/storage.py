"""What an explain run leaves on disk, in a run folder of the disk budget
(:mod:`xai_app.budget`).

One run (sizes follow the display size, never the upload's pixel count):

* one JPEG preview per gallery panel at display size (at most 512 px a side);
* the labelled sheet (``xai.render.gallery``) as one JPEG;
* a deflated ZIP: ``manifest.json``, ``image.png`` (the explained region, once), every panel's
  map as an 8-bit greyscale PNG (``maps/``) and as float32 ``.npy`` at feature-map resolution
  and image size (``raw/``, also beside the previews: :mod:`xai_app.rawmaps`); overlays are
  ``image`` blended with a colour map of a map at ``alpha`` (see the manifest).
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import xai
from xai.cams.fusion import fusions_of, panel_map
from xai.engine import Explanation
from xai.export import slug
from xai.render import PAD, PANEL, fused_panels, gallery, panels

from . import heap, rawmaps
from .budget import STORE, RunStore

log = logging.getLogger("xai_app")

JPEG_QUALITY = 90  # previews and sheet: measured ~6x smaller than PNG and 15x faster to encode
ALPHA, COLORMAP = 0.5, "jet"


@dataclass
class ExplainRun:
    """One explained image and its files: gallery previews (written first), then the labelled
    sheet and the ZIP (:meth:`finish`); until then the run folder is busy in its store."""

    result: Explanation
    gallery: list[tuple[str, str]]  # (JPEG preview path, caption), rows = depths per target
    sheet: Path  # the whole labelled gallery (xai.render.gallery) as JPEG
    zip: Path  # manifest.json, image.png and every map as greyscale PNG and raw .npy
    manifest: dict[str, Any]
    store: RunStore | None = field(default=None, repr=False)
    drawn: dict[int, list] = field(default_factory=dict, repr=False)  # panels per target
    done: bool = False
    raw: list[Path] = field(default_factory=list)  # float32 .npy maps, once finished
    previews: list[bytes] = field(default_factory=list, repr=False)  # the gallery's JPEGs

    def finish(self) -> ExplainRun:
        """Write the labelled sheet and the ZIP (once), then hand the folder to the budget.
        The maps are read out in a compute thread (:mod:`xai_app.heap`: torch work), the rest
        is drawn, encoded and written in the caller's thread."""
        if not self.done:
            try:
                _write_files(self, heap.confined(_file_maps, self))
            finally:
                self.close()
        return self

    def close(self) -> None:
        """Hand the folder to the budget, written or not (a client that went away)."""
        if not self.done:
            self.done = True
            self.drawn = {}
            if self.store is not None:
                self.store.release([self.sheet.parent])


def save_pictures(pictures: list[Image.Image], store: RunStore | None = None,
                  prefix: str = "view-") -> list[Path]:
    """Pictures an app view returns, as PNG files in a new folder within the budget (Gradio
    would otherwise write its own copies into its cache, outside it)."""
    store = store or STORE
    out = store.reserve(int(sum(p.width * p.height * 3.03 for p in pictures)) + 2**20, prefix)
    paths = []
    try:
        for i, pic in enumerate(pictures):
            paths.append(out / f"{i:02d}.png")
            pic.convert("RGB").save(paths[-1], "PNG", compress_level=3)
    finally:
        store.release([out])
    return paths


def look(settings: dict[str, Any] | None) -> tuple[float, str]:
    """(alpha, colormap) of a run's settings; the defaults where they are not set."""
    settings = settings or {}
    return float(settings.get("alpha", ALPHA)), str(settings.get("colormap", COLORMAP))


def _jpeg(pic: np.ndarray | Image.Image) -> bytes:
    img = pic if isinstance(pic, Image.Image) else Image.fromarray(pic)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=3)  # 5x faster than 6, +12 %
    return buf.getvalue()


def bound_bytes(result: Explanation) -> int:
    """An upper bound of a run's bytes: JPEG at 4:2:0 stays under 1 byte a pixel (pure noise
    at quality 90: 0.9), a greyscale PNG under 1.01, an RGB PNG under 3.03; the sheet has a
    tile of at most (PANEL + PAD)² pixels per panel and per input, plus its labels."""
    h, w = result.image.shape[:2]
    fused = len(fusions_of(result))  # the fused row's panels, and its row on the sheet
    n = len(result.targets) * (len(result.depths) * len(result.panel_methods) + fused)
    tiles = (len(result.targets) * (len(result.depths) + bool(fused))
             * (len(result.panel_methods) + 1))
    return int(n * h * w * 2.02 + h * w * 3.03 + 1.5 * tiles * (PANEL + PAD) ** 2 + 2**21
               + rawmaps.raw_bytes(result))


def write_run(result: Explanation, stem: str, settings: dict[str, Any] | None = None,
              store: RunStore | None = None, finish: bool = True) -> ExplainRun:
    """Save the gallery previews in a budgeted run folder; with ``finish`` also the labelled
    sheet and the ZIP (else call :meth:`ExplainRun.finish` after answering)."""
    store = store or STORE
    out = store.reserve(bound_bytes(result))
    try:
        run = _write_previews(result, out, stem, settings, store)
    except BaseException:
        store.release([out])
        raise
    return run.finish() if finish else run


def _write_previews(result: Explanation, out: Path, stem: str,
                    settings: dict[str, Any] | None, store: RunStore) -> ExplainRun:
    alpha, colormap = look(settings)
    drawn = {t.index: panels(result, t.index, alpha, colormap) for t in result.targets}
    fused = [(tgt, fused_panels(result, tgt.index, alpha, colormap)) for tgt in result.targets]
    items, overlays, previews = [], [], []  # the fused panels last: shifts no other row
    for tgt, pics in [(t, drawn[t.index]) for t in result.targets] + fused:
        for pic, method, depth, caption in pics:
            name = f"{tgt.index}-{slug(tgt.label)}_{slug(method)}_{slug(depth)}"
            previews.append(_jpeg(pic))
            (out / f"{stem}_{name}.jpg").write_bytes(previews[-1])
            overlays.append({"file": f"{stem}_{name}.jpg", "map": f"maps/{name}.png",
                             "method": method, "depth": depth, "target": tgt.index,
                             "caption": caption})
            items.append((str(out / f"{stem}_{name}.jpg"),
                          f"{caption} · {tgt.label} {tgt.probability:.0%}"))
    files = {"gallery": f"{stem}_gallery.jpg", "image": "image.png", "overlays": overlays,
             "overlay": {"colormap": colormap, "alpha": alpha, "maps": "8-bit, map = value/255"}}
    manifest = dict(result.manifest(), files=files,
                    app=dict(settings or {}, xai_version=xai.__version__))
    rawmaps.entries(manifest)
    for tgt, pics in fused:  # the sheet's fused row: drawn once too
        drawn[tgt.index] = drawn[tgt.index] + pics
    return ExplainRun(result, items, out / files["gallery"], out / f"{stem}_xai.zip", manifest,
                      store, drawn, previews=previews)


@dataclass
class FileMaps:
    """The torch part of writing a run's files: per overlay entry its image-size map and its
    feature-map one (None where there is none), in the manifest's order."""

    maps: list[np.ndarray]
    feature_maps: list[np.ndarray | None]


def _file_maps(run: ExplainRun) -> FileMaps:
    result, entries = run.result, run.manifest["files"]["overlays"]
    return FileMaps(
        [panel_map(result, e["method"], e["depth"], e["target"]) for e in entries],
        [rawmaps.feature_map(result, e["method"], e["depth"], e["target"])
         if "feature_map" in e.get("raw", {}) else None for e in entries])


def _write_files(run: ExplainRun, drawn: FileMaps) -> None:
    """The labelled sheet (from the panels drawn for the previews: no torch) and the ZIP, each
    written under a temporary name and renamed, so a download never sees half a file."""
    alpha, colormap = look(run.manifest.get("app"))
    heap.wait_quiet()  # between steps, a request being computed goes first
    sheet = gallery(run.result, alpha=alpha, colormap=colormap, drawn=run.drawn)
    part = run.sheet.with_name(run.sheet.name + ".part")
    part.write_bytes(_jpeg(sheet))
    part.replace(run.sheet)
    heap.wait_quiet()
    part = run.zip.with_name(run.zip.name + ".part")
    with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(run.manifest, indent=2))
        zf.writestr("image.png", _png(run.result.image), compress_type=zipfile.ZIP_STORED)
        for entry, cam in zip(run.manifest["files"]["overlays"], drawn.maps, strict=True):
            heap.wait_quiet()
            zf.writestr(entry["map"], _png((cam * 255).round().astype(np.uint8)),
                        compress_type=zipfile.ZIP_STORED)  # PNG is deflated already
        run.raw = rawmaps.write(run.manifest, drawn.maps, drawn.feature_maps,
                                run.sheet.parent, zf, heap.wait_quiet)
    part.replace(run.zip)
