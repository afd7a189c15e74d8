"""The pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop"),
exactly as TorchRay's ``PointingGame``, and the energy-based pointing game (Wang et al. 2020,
Score-CAM).

Pointing game: the map is resized (bilinear) to the original image, its point is the first
maximum in row-major order, and it is a *hit* when some pixel of the object's mask (the union of
the class's boxes) lies at a distance ``< tolerance`` (15 px) from it:
``hit = any_{(u,v) in mask} (u - x)^2 + (v - y)^2 < 15^2``. As TorchRay, an image x class whose
boxes are all VOC-*difficult* is skipped, and accuracy is the mean over classes of
``hits / (hits + misses)``. The *difficult* split (EBP): the class's boxes cover less than 1/4
of the image and another class is present; TorchRay's own flag file can be given instead.

Energy-based pointing game: ``sum_{mask} L / sum L`` for the map ``L`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .datasets import Box, DatasetError

TOLERANCE = 15
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def peak(cam: torch.Tensor | np.ndarray) -> tuple[int, int]:
    """(x, y) of the first maximum in row-major order (TorchRay's ``_saliency_to_point``)."""
    cam = torch.as_tensor(cam)
    i = int(torch.argmax(cam.reshape(-1)))
    w = cam.shape[-1]
    return i % w, i // w


def object_mask(boxes: Sequence[Box], size: tuple[int, int], label: str | None = None,
                mask_file: str | None = None) -> np.ndarray | None:
    """Boolean (h, w) mask of the objects labelled ``label`` (None: every object) in an image of
    ``size`` (w, h): the union of their boxes, or of their polygons where COCO gives them;
    a mask image (non-zero = object) when given. None when no object matches."""
    w, h = size
    if mask_file:
        try:
            with Image.open(mask_file) as m:
                arr = np.asarray(m.convert("L").resize((w, h), Image.NEAREST)) > 0
        except OSError as exc:
            raise DatasetError(f"{mask_file}: unreadable mask ({exc})") from None
        return arr
    chosen = [b for b in boxes if label is None or b.label == label]
    if not chosen:
        return None
    mask = np.zeros((h, w), dtype=bool)
    for b in chosen:
        if b.polygons:
            canvas = Image.new("1", (w, h))
            draw = ImageDraw.Draw(canvas)
            for poly in b.polygons:
                if len(poly) >= 6:
                    draw.polygon(list(poly), fill=1)
            mask |= np.asarray(canvas, dtype=bool)
        else:
            x0, y0 = max(0, int(np.floor(b.x0))), max(0, int(np.floor(b.y0)))
            x1, y1 = min(w, int(np.ceil(b.x1))), min(h, int(np.ceil(b.y1)))
            mask[y0:y1, x0:x1] = True
    return mask


def pointing_hit(mask: np.ndarray, point: tuple[int, int], tolerance: int = TOLERANCE) -> bool:
    """TorchRay's test: a mask pixel at squared distance ``< tolerance**2`` from ``point``."""
    x, y = point
    h, w = mask.shape
    t = int(tolerance)
    y0, y1, x0, x1 = max(0, y - t), min(h, y + t + 1), max(0, x - t), min(w, x + t + 1)
    if y0 >= y1 or x0 >= x1:
        return False
    vv, uu = np.mgrid[y0:y1, x0:x1]
    accept = (vv - y) ** 2 + (uu - x) ** 2 < tolerance ** 2
    return bool((mask[y0:y1, x0:x1] & accept).any())


def energy(cam: torch.Tensor | np.ndarray, mask: np.ndarray) -> float:
    """Energy-based pointing game: the share of the map's mass inside the mask."""
    cam = np.asarray(cam, dtype=np.float32)
    total = float(cam.sum(dtype=np.float64))
    if total <= 0:
        return 0.0
    return float(cam.sum(where=mask, dtype=np.float64)) / total


def all_difficult(boxes: Sequence[Box], label: str) -> bool:
    """True when every box of ``label`` is VOC-difficult: TorchRay skips the pair."""
    own = [b for b in boxes if b.label == label]
    return bool(own) and all(b.difficult for b in own)


def ebp_difficult(boxes: Sequence[Box], label: str, size: tuple[int, int],
                  mask: np.ndarray | None = None) -> bool:
    """EBP's difficult pair: the class covers < 1/4 of the image and another class is present."""
    w, h = size
    if mask is None:
        mask = object_mask(boxes, size, label)
    if mask is None:
        return False
    others = {b.label for b in boxes} - {label}
    return bool(others) and float(mask.sum()) < 0.25 * w * h


def load_difficult_flags(path: str | Path,
                         classes: Sequence[str] = VOC_CLASSES) -> dict[tuple[str, str], bool]:
    """TorchRay's flag file (``pointing_game_ebp_voc07_difficult.txt``: image name, then one
    0/1 per class, tab-separated) as ``{(image stem, class): flag}``."""
    flags: dict[tuple[str, str], bool] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the difficult flags ({exc})") from None
    for line in lines:
        parts = line.strip().split("\t")
        if len(parts) < 2:
            continue
        for cls, v in zip(classes, parts[1:]):
            flags[(parts[0], cls)] = v.strip() == "1"
    return flags
