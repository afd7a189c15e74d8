"""Pictures from an :class:`~xai.engine.Explanation`: overlays and a labelled gallery grid."""

from __future__ import annotations

import functools
import os
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .cams import GUIDED, get_method
from .cams.fusion import FUSED, FUSION_TITLES, FUSIONS, fused_map, fusions_of
from .errors import OptionError

if TYPE_CHECKING:
    from .engine import Explanation

PANEL = 224
PAD = 8
BG = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)


@lru_cache(maxsize=8)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (shipped with matplotlib) at ``size`` px."""
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", name)
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=16)
def colour_table(colormap: str = "jet") -> np.ndarray:
    """(256, 3) uint8: matplotlib's colour map sampled at its 256 entries."""
    from matplotlib import colormaps

    return (colormaps[colormap](np.arange(256))[:, :3] * 255).round().astype(np.uint8)


def colorize(cam: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A [0, 1] map as an RGB uint8 heat map: the same entry matplotlib picks (floor(x·256),
    1 -> 255), read from a cached table (4x faster than calling the colour map)."""
    index = (np.clip(cam, 0, 1) * 256).astype(np.int32)
    return np.take(colour_table(colormap), np.minimum(index, 255), axis=0)  # 7x [] indexing


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5,
            colormap: str = "jet") -> np.ndarray:
    """Blend a heat map over an RGB uint8 image: ``alpha`` is the heat map's weight."""
    if not 0.0 <= alpha <= 1.0:
        raise OptionError(f"alpha must be in [0, 1], not {alpha}")
    if cam.shape != image.shape[:2]:
        raise OptionError(f"map {cam.shape} and image {image.shape[:2]} differ in size")
    out = np.multiply(image, np.float32(1 - alpha), dtype=np.float32)  # in place: 4x faster
    out += np.multiply(colorize(cam, colormap), np.float32(alpha), dtype=np.float32)
    np.rint(out, out=out)
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def method_title(method: str) -> str:
    return "Guided Grad-CAM" if method == GUIDED else (get_method(method).title or method)


def panels(result: Explanation, target: int | str | None = None, alpha: float = 0.5,
           colormap: str = "jet") -> list[tuple[np.ndarray, str, str, str]]:
    """Every panel for one target: (RGB image, method, depth, caption), rows = depths."""
    methods = result.panel_methods
    out = []
    for depth in result.depths:
        layer = result.layer(depth)
        for method in methods:
            if method == GUIDED:
                pic = result.guided_image(depth, target)
            else:
                pic = overlay(result.image, result.cam(method, depth, target), alpha, colormap)
            caption = f"{method_title(method)} · {depth} · {layer.name} · {layer.size}"
            out.append((pic, method, depth, caption))
    return out


def colour_bar(canvas: Image.Image, at: tuple[int, int], width: int, colormap: str = "jet"
               ) -> None:
    """Draw the map scale at ``at``: the colormap from 0 (left) to 1 as a 12 px strip, its
    labels below (28 px in all)."""
    x, y = at
    strip = colorize(np.tile(np.linspace(0, 1, width, dtype=np.float32), (12, 1)), colormap)
    canvas.paste(Image.fromarray(strip), (x, y))
    draw, f = ImageDraw.Draw(canvas), font(11)
    draw.text((x, y + 15), "0 low", fill=MUTED, font=f)
    right = "high 1"
    draw.text((x + width - f.getlength(right), y + 15), right, fill=MUTED, font=f)
    mid = f"map value ({colormap})"
    draw.text((x + (width - f.getlength(mid)) / 2, y + 15), mid, fill=MUTED, font=f)


def _fit(text: str, fnt: ImageFont.FreeTypeFont, width: int) -> str:
    if fnt.getlength(text) <= width:
        return text
    while text and fnt.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def gallery(result: Explanation, alpha: float = 0.5, colormap: str = "jet",
            panel: int = PANEL, drawn: dict | None = None) -> Image.Image:
    """One labelled PNG-ready grid: a block per target, rows = layers, columns = methods.

    ``drawn`` may hold :func:`panels` (and :func:`fused_panels`) already made per target
    index, to draw them only once: the sheet is then drawn without torch.
    """
    methods = result.panel_methods
    head_f, col_f = font(18, True), font(15, True)
    row_label_w = 190
    cols = len(methods) + 1  # the input image first
    width = row_label_w + cols * (panel + PAD) + PAD
    title_h, col_h = 58, 50
    fused = fused_columns(result)
    n_rows = len(result.depths) + bool(fused)
    block_h = col_h + n_rows * (panel + PAD) + 14
    height = title_h + block_h * len(result.targets)
    canvas = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(canvas)
    _sheet_title(canvas, draw, result, colormap)
    y = title_h
    for tgt in result.targets:
        draw.text((PAD, y + 2), _fit(f"target: {tgt.label} (class {tgt.index}, "
                                     f"p = {tgt.probability:.3f})", head_f, width - 16),
                  fill=INK, font=head_f)
        for j, name in enumerate(["input"] + methods):
            x = row_label_w + PAD + j * (panel + PAD)
            draw.text((x, y + 28), _fit(method_title(name) if name != "input" else "input", col_f,
                                        panel), fill=INK, font=col_f)
        y += col_h
        pics = (drawn or {}).get(tgt.index) or panels(result, tgt.index, alpha, colormap)
        for r, depth in enumerate(result.depths):
            _layer_row(canvas, draw, result, depth, pics, (row_label_w, y + r * (panel + PAD),
                                                           panel))
        if fused:
            _fused_row(canvas, draw, result, tgt.index, fused, methods,
                       (row_label_w, y + len(result.depths) * (panel + PAD), panel),
                       alpha, colormap, pics)
        y += n_rows * (panel + PAD) + 14
    return canvas


def _sheet_title(canvas: Image.Image, draw: ImageDraw.ImageDraw, result: Explanation,
                 colormap: str) -> None:
    """The sheet's two title lines (model, top predictions, region) and its colour bar."""
    width = canvas.width
    head_f, small_f = font(18, True), font(11)
    top5 = ", ".join(f"{p.label} {p.probability:.0%}" for p in result.predictions[:3])
    bar_w = 220
    draw.text((PAD, 8), _fit(f"{result.model} — {result.mode} — top: {top5}", head_f,
                             width - 3 * PAD - bar_w), fill=INK, font=head_f)
    colour_bar(canvas, (width - PAD - bar_w, 8), bar_w, colormap)
    box = result.box
    draw.text((PAD, 34), _fit(f"explained region {box[2] - box[0]}×{box[3] - box[1]} at "
                              f"({box[0]}, {box[1]}) of the input; model input "
                              f"{result.input_size[1]}×{result.input_size[0]}",
                              small_f, width - 3 * PAD - bar_w), fill=MUTED, font=small_f)


def _layer_row(canvas: Image.Image, draw: ImageDraw.ImageDraw, result: Explanation, depth: str,
               pics: list, at: tuple[int, int, int]) -> None:
    """One depth's row: its label (depth, module, kind, position, size), the input and every
    method's panel; ``at`` = (label width, top, panel size)."""
    row_label_w, ry, panel = at
    row_f, small_f = font(13, True), font(11)
    layer = result.layer(depth)
    for k, line in enumerate([depth, layer.name, layer.kind, layer.position, layer.size]):
        draw.text((PAD, ry + 4 + k * 17), _fit(line, row_f if k == 0 else small_f,
                                               row_label_w - 12),
                  fill=INK if k == 0 else MUTED, font=row_f if k == 0 else small_f)
    row_pics = [result.image] + [p for p, _, d, _ in pics if d == depth]
    for j, pic in enumerate(row_pics):
        tile = Image.fromarray(pic).resize((panel, panel), Image.BILINEAR)
        canvas.paste(tile, (row_label_w + PAD + j * (panel + PAD), ry))


def fused_columns(result: Explanation) -> dict[str, str]:
    """{method column: fusion} for the sheet's fused row: LayerCAM fusion under LayerCAM, and
    RefineCAM under Grad-CAM++, once LayerCAM was computed at more than one depth."""
    return {FUSIONS[k][0]: k for k in fusions_of(result)}


def fused_panels(result: Explanation, target: int | str | None = None, alpha: float = 0.5,
                 colormap: str = "jet") -> list[tuple[np.ndarray, str, str, str]]:
    """The fused row for one target, as :func:`panels`: (RGB image, fusion, ``"fused"``,
    caption), from the maps already computed (:func:`xai.cams.fusion.fusions_of`)."""
    over = " + ".join(result.depths)
    return [(overlay(result.image, fused_map(result, k, target), alpha, colormap), k, FUSED,
             f"{FUSION_TITLES[k]} · fused {over} · {method_title(FUSIONS[k][0])} maps")
            for k in fusions_of(result)]


def _fused_row(canvas, draw, result, target, fused, methods, at, alpha, colormap,
               pics=()) -> None:
    row_label_w, ry, panel = at
    lines = ["fused", " + ".join(result.depths), "LayerCAM fusion,", "RefineCAM"]
    for k, line in enumerate(lines):
        fnt = font(13, True) if k == 0 else font(11)
        draw.text((PAD, ry + 4 + k * 17), _fit(line, fnt, row_label_w - 12),
                  fill=INK if k == 0 else MUTED, font=fnt)
    ready = {m: p for p, m, d, _ in pics if d == FUSED}
    for method, kind in fused.items():
        pic = ready.get(kind)
        if pic is None:
            pic = overlay(result.image, fused_map(result, kind, target), alpha, colormap)
        x = row_label_w + PAD + (1 + methods.index(method)) * (panel + PAD)
        canvas.paste(Image.fromarray(pic).resize((panel, panel), Image.BILINEAR), (x, ry))
