"""Read any image safely and turn it into the model's input, without hidden crops.

Limits are explicit and checked before any pixel is decoded: inputs over ``MAX_FILE_BYTES``
and images whose header declares more than ``MAX_PIXELS`` are refused; Pillow's own bomb guard
(``Image.MAX_IMAGE_PIXELS``) is set to the same number. Only the common photo formats in
``FORMATS`` are opened (no EPS/PostScript, PSD, FITS, ...). Every failure is an
:class:`ImageError` with a one-line message.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import ImageError
from .preprocessing import Preprocessing

MAX_PIXELS = 40_000_000  # e.g. 8000 x 5000; larger images are refused before decoding
MAX_FILE_BYTES = 50 * 1024 * 1024
MIN_SIDE = 8  # a side shorter than this has no 2-D structure to explain; refused, not upscaled
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "PPM", "ICO", "AVIF")
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray
FITS = ("crop", "full")


def load_image(image: ImageInput, *, min_side: int | None = None) -> Image.Image:
    """Return an RGB PIL image from a path, bytes, PIL image or HxW[x1/3/4] array.

    Applies EXIF orientation, flattens transparency onto white, converts any mode (L, P, I;16,
    CMYK, ...) to RGB, takes the first frame of animations. Raises :class:`ImageError`.
    With ``min_side``, a JPEG file much larger than that is decoded at 1/2, 1/4 or 1/8 scale
    (libjpeg's DCT scaling) with its shorter side still >= ``min_side``; the factor is
    ``img.info["xai_scale"]``.
    """
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        return _to_rgb(image, "the given image")
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        _check_bytes(len(data), "the given bytes")
        return _open(io.BytesIO(data), "the given bytes", min_side)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        what = clean_text(path.name) or "image"
        try:
            is_file = path.is_file()
            size = path.stat().st_size if is_file else 0
        except OSError:  # a name too long for the file system, a loop of links, ...
            is_file = False
        if not is_file:
            raise ImageError(f"image file not found: {clean_text(str(path))}")
        _check_bytes(size, what)  # refused before a byte is read
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)  # never more than the limit, even if growing
        except OSError as exc:
            raise ImageError(f"{what}: cannot read the file ({_reason(exc)})") from exc
        _check_bytes(len(data), what)
        return _open(io.BytesIO(data), what, min_side)
    raise ImageError(f"unsupported image input of type {type(image).__name__}")


def header_size(image: str | os.PathLike | bytes, max_bytes: int | None = None,
                what: str | None = None) -> tuple[int, int]:
    """(width, height) of an image file or bytes, read from its header only: the byte limit
    ``max_bytes`` (default :data:`MAX_FILE_BYTES`) and :data:`MAX_PIXELS` are checked before
    any pixel is decoded, and only :data:`FORMATS` are read. Raises :class:`ImageError`."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        what = what or "the given bytes"
        _check_bytes(len(image), what, max_bytes)
        source: io.BytesIO | Path = io.BytesIO(bytes(image))
    else:
        source = Path(image)
        what = what or clean_text(source.name) or "image"
        try:
            size = source.stat().st_size if source.is_file() else -1
        except OSError:
            size = -1
        if size < 0:
            raise ImageError(f"image file not found: {clean_text(str(source))}")
        _check_bytes(size, what, max_bytes)
    try:
        with Image.open(source, formats=FORMATS) as img:
            w, h = img.size
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{what}: image too large (over {MAX_PIXELS:,} pixels)") from exc
    except Exception as exc:
        raise ImageError(f"{what}: not a readable image (supported: "
                         f"{', '.join(f.lower() for f in FORMATS)})") from exc
    _check_pixels(w, h, what)
    return w, h


def clean_text(text: object, limit: int = 120) -> str:
    """``text`` on one line (control characters replaced), at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    return clean_text(str(exc) or type(exc).__name__, 160)


def _check_bytes(size: int, what: str, limit: int | None = None) -> None:
    limit = MAX_FILE_BYTES if limit is None else limit
    if size == 0:
        raise ImageError(f"{what}: the file is empty")
    if size > limit:
        shown = f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit:,}-byte"
        raise ImageError(f"{what}: {size / 2**20:.1f} MiB is over the {shown} file-size limit")


def _check_pixels(w: int, h: int, what: str) -> None:
    if w * h > MAX_PIXELS:
        raise ImageError(f"{what}: {w}x{h} is over the {MAX_PIXELS:,}-pixel limit")


def _open(fh: io.BytesIO, what: str, min_side: int | None = None) -> Image.Image:
    try:
        img = Image.open(fh, formats=FORMATS)  # reads the header only; JPEG covers MPO
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{what}: image too large (over {MAX_PIXELS:,} pixels)") from exc
    except Exception as exc:  # Pillow raises many types on hostile headers; all mean one thing
        raise ImageError(f"{what}: not a readable image (supported: "
                         f"{', '.join(f.lower() for f in FORMATS)})") from exc
    _check_pixels(*img.size, what)  # before a single pixel is decoded
    full_w = img.size[0]
    try:
        img.seek(0)
        if min_side and img.format in ("JPEG", "MPO") and min(img.size) >= 2 * min_side:
            s = min_side / min(img.size)
            img.draft("RGB", (math.ceil(img.size[0] * s), math.ceil(img.size[1] * s)))
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{what}: image too large (over {MAX_PIXELS:,} pixels)") from exc
    except Exception as exc:
        raise ImageError(f"{what}: truncated or corrupt image ({_reason(exc)})") from exc
    scale = full_w / img.size[0]
    img = _to_rgb(img, what)
    img.info["xai_scale"] = scale
    return img


def _to_rgb(img: Image.Image, what: str) -> Image.Image:
    _check_pixels(*img.size, what)
    try:
        img = _convert(img)
    except Exception as exc:  # a lazy, truncated PIL image or an exotic mode
        raise ImageError(f"{what}: unreadable {img.mode} image ({_reason(exc)})") from exc
    if min(img.size) < MIN_SIDE:
        raise ImageError(f"image is {img.size[0]}x{img.size[1]}; both sides must be at least "
                         f"{MIN_SIDE} pixels")
    return img


def _convert(img: Image.Image) -> Image.Image:
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block must not lose the picture
        pass
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(arr.min()), float(arr.max())
        if hi > lo:
            arr -= lo
            arr *= 255.0 / (hi - lo)
        else:
            arr[:] = 0
        img = Image.fromarray(arr.round().astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("La", "RGBa"):  # premultiplied alpha
        img = img.convert("RGBA" if img.mode == "RGBa" else "LA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB")


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {arr.shape} is not HxW, HxWx3 or HxWx4")
    _check_pixels(arr.shape[1], arr.shape[0], "the given array")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        is_float = np.issubdtype(arr.dtype, np.floating)
        if not (is_float or np.issubdtype(arr.dtype, np.integer)):
            raise ImageError(f"array of dtype {arr.dtype} is not an image (use uint8, an "
                             f"integer type or floats)")
        arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if is_float and arr.size and arr.max() <= 1.0:  # floats in [0, 1]
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).round().astype(np.uint8)
    try:
        img = Image.fromarray(np.ascontiguousarray(arr))
    except Exception as exc:
        raise ImageError(f"array of shape {arr.shape}: not an image ({_reason(exc)})") from exc
    return _to_rgb(img, "the given array")


@dataclass(frozen=True)
class Prepared:
    """The model input and the region of the user's image it shows."""

    tensor: torch.Tensor  # (1, 3, H, W), normalised
    region: Image.Image  # the part of the user's image the model sees (RGB, original pixels)
    box: tuple[int, int, int, int]  # that region in the user's image: left, top, right, bottom


def crop_box(size: tuple[int, int], input_size: tuple[int, int], crop_pct: float,
             fit: str) -> tuple[int, int, int, int]:
    """The region of an image of ``size`` (w, h) that the model sees.

    ``crop``: the model's centre crop (as its eval transform: resize so the crop covers
    ``crop_pct`` of the shorter side, then cut ``input_size``), never empty: at least 1x1, so a
    long strip gives a small central square; ``full``: the whole image.
    """
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ImageError(f"image is {w}x{h}; it has no pixels")
    if fit == "full":
        return (0, 0, w, h)
    if fit != "crop":
        raise ImageError(f"unknown fit {fit!r}; use one of {', '.join(FITS)}")
    in_h, in_w = input_size
    if not (in_h > 0 and in_w > 0 and crop_pct > 0):
        raise ImageError(f"bad preprocessing: input size {in_w}x{in_h}, crop_pct {crop_pct}")
    scale = max(in_h / (h * crop_pct), in_w / (w * crop_pct))  # resize so the crop fits
    cw = min(w, max(1, round(in_w / scale)))
    ch = min(h, max(1, round(in_h / scale)))
    left, top = (w - cw) // 2, (h - ch) // 2
    return (left, top, left + cw, top + ch)


_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
             "lanczos": Image.LANCZOS}


def prepare(image: ImageInput, preprocessing: Preprocessing, fit: str = "crop",
            display_size: int | None = None) -> Prepared:
    """Resize and normalise as the model's own eval transform does.

    ``fit="crop"`` takes the model's centre crop (the region is reported, never hidden);
    ``fit="full"`` resizes the whole image to the input size. With ``display_size``, a big
    JPEG is decoded once at a reduced scale that still covers the model input and a
    ``display_size`` region (a 4000x3000 photo: 1000x750), so no later step scales with the
    upload's pixel count.
    """
    input_size, mean, std = preprocessing.input_size, preprocessing.mean, preprocessing.std
    interpolation, crop_pct = preprocessing.interpolation, preprocessing.crop_pct
    need = None
    if display_size:
        need = max(*input_size, display_size) / (min(crop_pct, 1.0) if fit == "crop" else 1.0)
    img = load_image(image, min_side=math.ceil(need) if need else None)
    box = crop_box(img.size, input_size, crop_pct, fit)
    region = img.crop(box) if box != (0, 0, *img.size) else img
    k = img.info.get("xai_scale", 1.0)
    if k != 1.0:  # the box in the user's image, as if it had been decoded at full size
        box = tuple(round(v * k) for v in box)
    h, w = input_size
    resized = region.resize((w, h), _RESAMPLE.get(interpolation, Image.BILINEAR))
    x = torch.from_numpy(np.array(resized, dtype=np.float32)).permute(2, 0, 1) / 255.0
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return Prepared(x.unsqueeze(0), region, box)
