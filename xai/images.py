"""Read any image safely and turn it into the model's input, without hidden crops.

Limits are explicit: files over ``MAX_FILE_BYTES`` and images over ``MAX_PIXELS`` are refused
before decoding; Pillow's own bomb guard is set to the same number.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

MAX_PIXELS = 40_000_000  # about 7000 x 5700; larger images are refused before decoding
MAX_FILE_BYTES = 50 * 1024 * 1024
MIN_SIDE = 8
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]
FITS = ("crop", "full")


def load_image(image: ImageInput) -> Image.Image:
    """Return an RGB PIL image from a path, bytes, PIL image or HxW[x1/3/4] array.

    Applies EXIF orientation, flattens transparency onto white, converts any mode (L, P, I;16,
    CMYK, ...) to RGB, takes the first frame of animations. Raises :class:`ImageError`.
    """
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    if isinstance(image, (bytes, bytearray)):
        return _open(io.BytesIO(image), "the given bytes")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"{path.name}: the file is empty")
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{path.name}: {size / 2**20:.0f} MiB is over the "
                             f"{MAX_FILE_BYTES // 2**20} MiB limit")
        with open(path, "rb") as fh:
            return _open(io.BytesIO(fh.read()), path.name)
    raise ImageError(f"unsupported image input of type {type(image).__name__}")


def _open(fh: io.BytesIO, what: str) -> Image.Image:
    try:
        img = Image.open(fh)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{what}: not a readable image") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{what}: image too large (over {MAX_PIXELS:,} pixels)") from exc
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{what}: {w}x{h} is over the {MAX_PIXELS:,}-pixel limit")
    try:
        img.seek(0)
        img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{what}: truncated or corrupt image ({exc})") from exc
    return _to_rgb(img)


def _to_rgb(img: Image.Image) -> Image.Image:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{w}x{h} is over the {MAX_PIXELS:,}-pixel limit")
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block must not lose the picture
        pass
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    img = img.convert("RGB")
    if min(img.size) < MIN_SIDE:
        raise ImageError(f"image is {img.size[0]}x{img.size[1]}; both sides must be at least "
                         f"{MIN_SIDE} pixels")
    return img


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {arr.shape} is not HxW, HxWx3 or HxWx4")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr.astype(np.float64)), 0, 255).astype(np.uint8)
    return _to_rgb(Image.fromarray(np.ascontiguousarray(arr)))


@dataclass(frozen=True)
class Prepared:
    """The model input and the region of the user's image it shows."""

    tensor: torch.Tensor  # (1, 3, H, W), normalised
    region: Image.Image  # the part of the user's image the model sees (RGB, original pixels)
    box: tuple[int, int, int, int]  # that region in the user's image: left, top, right, bottom


def crop_box(size: tuple[int, int], input_size: tuple[int, int], crop_pct: float,
             fit: str) -> tuple[int, int, int, int]:
    """The region of an image of ``size`` (w, h) that the model sees."""
    w, h = size
    if fit == "full":
        return (0, 0, w, h)
    if fit != "crop":
        raise ImageError(f"unknown fit {fit!r}; use one of {', '.join(FITS)}")
    in_h, in_w = input_size
    scale = max(in_h / (h * crop_pct), in_w / (w * crop_pct))  # resize so the crop fits
    cw, ch = min(w, round(in_w / scale)), min(h, round(in_h / scale))
    left, top = (w - cw) // 2, (h - ch) // 2
    return (left, top, left + cw, top + ch)


_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
             "lanczos": Image.LANCZOS}


def prepare(image: ImageInput, input_size: tuple[int, int], mean, std,
            interpolation: str = "bilinear", crop_pct: float = 0.875,
            fit: str = "crop") -> Prepared:
    """Resize and normalise as the model's own eval transform does.

    ``fit="crop"`` takes the model's centre crop (the region is reported, never hidden);
    ``fit="full"`` resizes the whole image to the input size.
    """
    img = load_image(image)
    box = crop_box(img.size, input_size, crop_pct, fit)
    region = img.crop(box) if box != (0, 0, *img.size) else img
    h, w = input_size
    resized = region.resize((w, h), _RESAMPLE.get(interpolation, Image.BILINEAR))
    x = torch.from_numpy(np.array(resized, dtype=np.float32)).permute(2, 0, 1) / 255.0
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return Prepared(x.unsqueeze(0), region, box)
