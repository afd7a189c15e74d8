"""Hostile input through the library and the CLI: a correct result or one typed, one-line error.

Every fixture is generated here (``tmp_path``), nothing big is committed. After each refusal the
model carries no hook, keeps its training flag, and the next good request works.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import xai
import xai.engine
from xai import cli, images
from xai.cams import METHODS as CAM_METHODS
from xai.cams import CamMethod, register_method

ROOT = Path(__file__).resolve().parents[1]
CAT = ROOT / "examples" / "cat.png"
CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "lynx"}
CHEAP = {"methods": ("gradcam",), "depths": ("last",)}  # one forward, one small backward
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- fixture builders (also used by tests/test_load.py against the app) --------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring ``width`` x ``height`` RGB, with a token IDAT:
    tiny on disk; decoding it would need width * height * 3 bytes (and fail as truncated)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def cat_image(size: tuple[int, int] | None = None) -> Image.Image:
    img = Image.open(CAT).convert("RGB")
    return img.resize(size) if size else img


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


# name -> (file bytes, a substring the one-line error must contain)
@lru_cache(maxsize=1)
def bad_files() -> dict[str, tuple[bytes, str]]:
    """Inputs that must be refused with an ImageError (or gr.Error / 'error: ...')."""
    jpeg = encode(noise(256, 192), "JPEG", quality=90)
    png = encode(noise(256, 192), "PNG")
    return {
        "text.txt": (b"just some text, not a picture\n" * 20, "not a readable image"),
        "document.pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
                         b"trailer\n<< /Root 1 0 R >>\n%%EOF\n", "not a readable image"),
        "random.bin": (np.random.default_rng(1).bytes(4096), "not a readable image"),
        "empty.png": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "bomb_30000x30000.png": (png_header_only(30000, 30000), "40,000,000"),
        "over_limit_8000x6000.png": (png_header_only(8000, 6000), "pixel limit"),
        "tiny_1x1.png": (encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"), "at least 8"),
        "strip_1x5000.png": (encode(Image.new("RGB", (1, 5000), (9, 9, 9)), "PNG"), "at least 8"),
        "strip_5000x1.png": (encode(Image.new("RGB", (5000, 1), (9, 9, 9)), "PNG"), "at least 8"),
        "postscript.eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
                           b"newpath 0 0 moveto 100 100 lineto stroke showpage\n",
                           "not a readable image"),
    }


def _exif_rotated() -> bytes:
    """The cat stored lying on its side (rotated 90 degrees counter-clockwise), with EXIF
    orientation 6 (rotate 90 clockwise to display); a red mark in the stored top-left."""
    stored = cat_image((300, 200)).rotate(90, expand=True)  # stored 200 wide x 300 tall
    arr = np.array(stored)
    arr[:12, :12] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())


def _rgba() -> bytes:
    arr = np.zeros((64, 96, 4), np.uint8)
    arr[:, :48] = (255, 0, 0, 0)  # fully transparent red: must come out white
    arr[:, 48:] = (0, 0, 255, 255)  # opaque blue
    return encode(Image.fromarray(arr, "RGBA"), "PNG")


def _palette_transparent() -> bytes:
    img = Image.new("P", (64, 48), 1)
    img.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    img.paste(0, (0, 0, 32, 48))
    return encode(img, "PNG", transparency=0)  # index 0 (left half) transparent


def _gray16() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (40, 1))
    return encode(Image.fromarray(ramp, "I;16"), "PNG")


def _cmyk() -> bytes:
    return encode(cat_image().convert("CMYK"), "JPEG", quality=95)


def _gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def _check_gray(img: Image.Image) -> None:
    a = np.asarray(img).astype(int)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()


def _check_rgba(img: Image.Image) -> None:
    a = np.asarray(img)
    assert (a[:, :40] == 255).all(), "transparent pixels are flattened onto white"
    assert (a[:, 56:] == (0, 0, 255)).all()


def _check_palette(img: Image.Image) -> None:
    a = np.asarray(img)
    assert (a[:, :30] == 255).all() and (a[:, 34:] == (0, 200, 0)).all()


def _check_gray16(img: Image.Image) -> None:
    row = np.asarray(img)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all(), "full range, monotone"


def _check_cmyk(img: Image.Image) -> None:
    ref = np.asarray(cat_image()).astype(int)
    assert np.abs(np.asarray(img).astype(int) - ref).mean() < 12, "colours survive CMYK"


def _check_exif(img: Image.Image) -> None:
    assert img.size == (300, 200), "orientation 6 applied: stored 200x300 is shown 300x200"
    a = np.asarray(img).astype(int)
    assert a[:8, -8:, 0].mean() > 200 and a[:8, -8:, 1:].mean() < 60, "mark moved to top-right"
    ref = np.asarray(cat_image((300, 200))).astype(int)
    assert np.abs(a[20:, :-20] - ref[20:, :-20]).mean() < 12, "upright again"


def _check_gif(img: Image.Image) -> None:
    assert (np.asarray(img) == (255, 0, 0)).all(), "first frame"


def _check_webp(img: Image.Image) -> None:
    assert (np.asarray(img) == np.asarray(noise(64, 48, 7))).all(), "lossless WebP is exact"


# name -> (file bytes, expected (w, h), content check)
@lru_cache(maxsize=1)
def good_files() -> dict[str, tuple[bytes, tuple[int, int], Callable[[Image.Image], None]]]:
    """Inputs that must decode to the right RGB picture."""
    return {
        "gray.png": (encode(cat_image().convert("L"), "PNG"), (451, 300), _check_gray),
        "rgba_transparent.png": (_rgba(), (96, 64), _check_rgba),
        "palette.gif": (encode(cat_image().convert("P"), "GIF"), (451, 300), lambda img: None),
        "palette_transparent.png": (_palette_transparent(), (64, 48), _check_palette),
        "gray16.png": (_gray16(), (128, 40), _check_gray16),
        "cmyk.jpg": (_cmyk(), (451, 300), _check_cmyk),
        "exif_orientation6.jpg": (_exif_rotated(), (300, 200), _check_exif),
        "animated.gif": (_gif(), (40, 30), _check_gif),
        "lossless.webp": (encode(noise(64, 48, 7), "WEBP", lossless=True), (64, 48), _check_webp),
        "photo.webp": (encode(cat_image(), "WEBP", quality=90), (451, 300), lambda img: None),
        "strip_8x5000.png": (encode(noise(8, 5000), "PNG"), (8, 5000), lambda img: None),
        "strip_5000x8.png": (encode(noise(5000, 8), "PNG"), (5000, 8), lambda img: None),
        "min_8x8.png": (encode(noise(8, 8), "PNG"), (8, 8), lambda img: None),
    }


# explain keyword arguments that must be refused: (kwargs, error type, message substring)
BAD_PARAMS: dict[str, tuple[dict, type, str]] = {
    "unknown model": ({"model": "no_such_model_xyz"}, xai.UnknownModelError, "unknown model"),
    "depth conv:0": ({"depths": ["conv:0"]}, xai.LayerError, "conv:0"),
    "depth conv:99999": ({"depths": ["conv:99999"]}, xai.LayerError, "conv:99999"),
    "depth -0.1": ({"depths": ["-0.1"]}, xai.LayerError, "outside [0, 1]"),
    "depth 1.5": ({"depths": ["1.5"]}, xai.LayerError, "outside [0, 1]"),
    "depth nan": ({"depths": ["nan"]}, xai.LayerError, "outside [0, 1]"),
    "depth missing module": ({"depths": ["blocks.99.conv"]}, xai.LayerError, "blocks.99.conv"),
    "depth a parameter": ({"depths": ["conv_stem.weight"]}, xai.LayerError, "conv_stem.weight"),
    "depth non-spatial": ({"depths": ["classifier"]}, xai.LayerError, "not a spatial"),
    "no depth": ({"depths": []}, xai.LayerError, "no depth"),
    "depth mode": ({"mode": "layers"}, xai.LayerError, "mode"),
    "no method": ({"methods": []}, xai.MethodError, "no method"),
    "empty method string": ({"methods": ""}, xai.MethodError, "no method"),
    "blank method name": ({"methods": [" "]}, xai.MethodError, "unknown method"),
    "unknown method": ({"methods": ["gradcam", "lime"]}, xai.MethodError, "lime"),
    "guided as a method": ({"methods": ["guided-gradcam"]}, xai.MethodError, "guided=True"),
    "class 1000": ({"targets": 1000}, xai.TargetError, "out of range"),
    "class -1": ({"targets": -1}, xai.TargetError, "out of range"),
    "class '5000' as text": ({"targets": "5000"}, xai.TargetError, "out of range"),
    "unknown label": ({"targets": "unicorn"}, xai.TargetError, "unicorn"),
    "bool target": ({"targets": True}, xai.TargetError, "bool"),
    "empty target list": ({"targets": []}, xai.TargetError, "empty"),
    "top_k 0": ({"top_k": 0}, xai.TargetError, "out of range"),
    "top_k 1001": ({"top_k": 1001}, xai.TargetError, "out of range"),
    "top_k 2.5": ({"top_k": 2.5}, xai.TargetError, "integer"),
    "targets and top_k": ({"targets": 281, "top_k": 2}, xai.TargetError, "not both"),
    "fit": ({"fit": "stretch"}, xai.ImageError, "stretch"),
}


def write_files(folder: Path) -> dict[str, Path]:
    """Every bad and good fixture file written to ``folder``, by name."""
    out = {}
    for name, (data, *_rest) in {**bad_files(), **good_files()}.items():
        out[name] = folder / name
        out[name].write_bytes(data)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every bad and good fixture written to a temporary folder (plus a sparse > 50 MiB file)."""
    folder = tmp_path_factory.mktemp("hostile")
    out = write_files(folder)
    huge = folder / "huge_file.png"
    with open(huge, "wb") as fh:  # sparse: 10 GiB that take no disk; reading it would take long
        fh.write(encode(noise(16, 16), "PNG"))
        fh.truncate(10 * 2**30)
    out["huge_file.png"] = huge
    return out


# --- helpers ---------------------------------------------------------------------------------

def assert_clean(model: xai.LoadedModel, training: bool = False) -> None:
    """No hook of any kind on any module, the training flag as given, grad mode on, lock free."""
    for name, mod in model.module.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks"):
            hooks = getattr(mod, attr)
            assert not hooks, f"{attr} left on {name or 'the model'}: {hooks}"
    from torch.nn.modules import module as nn_module
    assert not nn_module._global_forward_hooks and not nn_module._global_backward_hooks
    assert model.module.training is training
    assert torch.is_grad_enabled()
    got = []

    def try_lock() -> None:
        got.append(model.lock.acquire(timeout=2))
        if got[-1]:
            model.lock.release()

    t = threading.Thread(target=try_lock)
    t.start()
    t.join()
    assert got == [True], "model.lock still held after the request"


def assert_one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg and "Traceback" not in msg, repr(msg)
    assert len(msg) < 400, msg
    return msg


def assert_good_request(model: xai.LoadedModel) -> None:
    r = xai.explain(model, CAT, **CHEAP)
    assert r.predictions[0].label in CAT_CLASSES
    cam = r.cam("gradcam", "last")
    assert cam.shape == r.image.shape[:2] and 0 <= cam.min() and cam.max() <= 1


def _explain_kwargs(case: str) -> dict:
    kwargs, _, _ = BAD_PARAMS[case]
    return {**CHEAP, **kwargs}


# --- library: files ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [*bad_files(), "huge_file.png"])
def test_bad_file_is_refused(name, files, bundled):
    expected = bad_files().get(name, (b"", "file-size limit"))[1]
    with pytest.raises(xai.ImageError) as info:
        xai.load_image(files[name])
    assert expected in assert_one_line(info.value)
    if name != "huge_file.png":
        with pytest.raises(xai.ImageError) as info:
            xai.load_image(files[name].read_bytes())
        assert expected in assert_one_line(info.value)
    with pytest.raises(xai.ImageError):
        xai.explain(bundled, files[name], **CHEAP)
    assert_clean(bundled)
    assert_good_request(bundled)


@pytest.mark.parametrize("name", list(good_files()))
def test_good_file_gives_correct_result(name, files, bundled):
    data, size, check = good_files()[name]
    for source in (files[name], data, Image.open(io.BytesIO(data))):
        img = xai.load_image(source)
        assert img.mode == "RGB" and img.size == size
        check(img)
    r = xai.explain(bundled, files[name], **CHEAP)
    left, top, right, bottom = r.box
    assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
    assert r.image.ndim == 3 and r.image.shape[2] == 3 and min(r.image.shape[:2]) >= 1
    assert r.cam("gradcam").shape == r.image.shape[:2]
    probs = [p.probability for p in r.predictions]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-5
    if name in ("gray.png", "cmyk.jpg", "exif_orientation6.jpg", "photo.webp", "palette.gif"):
        assert r.predictions[0].label in CAT_CLASSES, r.predictions[0]
    assert_clean(bundled)


@pytest.mark.parametrize("size", [(8, 5000), (5000, 8), (9, 3001), (3001, 9)])
@pytest.mark.parametrize("fit", ["crop", "full"])
def test_strips_work_in_both_fits(size, fit, bundled):
    r = xai.explain(bundled, np.asarray(noise(*size)), fit=fit, **CHEAP)
    left, top, right, bottom = r.box
    w, h = right - left, bottom - top
    if fit == "full":
        assert r.box == (0, 0, *size)
    else:  # the model's centre crop of a strip: a small central square, never empty
        assert w == h == round(min(size) * bundled.crop_pct)
        assert abs((left + right) - size[0]) <= 1 and abs((top + bottom) - size[1]) <= 1
    ih, iw = r.image.shape[:2]
    assert 1 <= min(ih, iw) and max(ih, iw) == min(max(w, h), 512)  # thumbnail for display
    assert np.isfinite(r.cam("gradcam")).all()


@pytest.mark.parametrize("size", [(1, 1), (1, 5000), (5000, 1), (2, 3), (7, 7)])
@pytest.mark.parametrize("crop_pct", [0.1, 0.5, 0.875, 1.0, 1.5])
def test_crop_box_is_never_empty(size, crop_pct):
    left, top, right, bottom = images.crop_box(size, (224, 224), crop_pct, "crop")
    assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]


def test_limits_are_explicit_and_checked_before_decoding(files, monkeypatch):
    import time

    from PIL import ImageFile

    assert Image.MAX_IMAGE_PIXELS == images.MAX_PIXELS == 40_000_000
    assert images.MAX_FILE_BYTES == 50 * 2**20
    decoded = []
    real_load = ImageFile.ImageFile.load

    def spy(self, *args, **kwargs):
        decoded.append(self.size)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    for name in ("bomb_30000x30000.png", "over_limit_8000x6000.png"):
        with pytest.raises(xai.ImageError, match="pixel"):
            xai.load_image(files[name])
    assert decoded == [], "an image over the pixel limit was decoded"
    xai.load_image(files["gray.png"])
    assert decoded and set(decoded) == {(451, 300)}, "the spy sees normal decoding"
    # a 10 GiB (sparse) file is refused from its size, without reading it
    t = time.perf_counter()
    with pytest.raises(xai.ImageError, match="file-size limit"):
        xai.load_image(files["huge_file.png"])
    assert time.perf_counter() - t < 0.5


def test_byte_inputs_have_the_file_size_limit_too(monkeypatch):
    data = encode(noise(64, 64), "PNG")
    monkeypatch.setattr(images, "MAX_FILE_BYTES", len(data) - 1)
    for source in (data, bytearray(data), memoryview(data)):
        with pytest.raises(xai.ImageError, match="file-size limit"):
            xai.load_image(source)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", len(data))
    assert xai.load_image(memoryview(data)).size == (64, 64)


ODD_SOURCES = {
    "empty path": "", "missing file": "/no/such/file.png", "NUL in path": "bad\0path.png",
    "5000-char name": "x" * 5000, "a folder": Path("/"), "an int": 12345, "None": None,
    "a list": [1, 2, 3], "2 channels": np.zeros((20, 20, 2)),
    "complex": np.zeros((20, 20, 3), complex), "objects": np.zeros((20, 20, 3), object),
    "0x0 array": np.zeros((0, 0, 3), np.uint8), "1-D array": np.zeros((5,)),
    "42 Mpx bool array": np.zeros((7000, 6000), np.bool_),
}


@pytest.mark.parametrize("source", list(ODD_SOURCES.values()), ids=list(ODD_SOURCES))
def test_odd_sources_are_refused(source):
    with pytest.raises(xai.ImageError) as info:
        xai.load_image(source)
    assert_one_line(info.value)


def test_odd_pil_images():
    for mode in ("1", "L", "LA", "La", "P", "PA", "I", "F", "I;16", "I;16B", "RGBA", "RGBa",
                 "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        assert xai.load_image(Image.new(mode, (12, 10))).mode == "RGB", mode
    lazy = Image.open(io.BytesIO(encode(noise(256, 192), "PNG")[:2000]))  # opened, not decoded
    with pytest.raises(xai.ImageError, match="truncated"):
        xai.load_image(lazy)
    floats = np.full((10, 12, 3), np.nan)
    floats[0, 0] = np.inf
    assert xai.load_image(floats).size == (12, 10)


def test_hostile_file_names_stay_on_one_line(tmp_path):
    path = tmp_path / "evil\nname\r<script>.png"
    path.write_bytes(b"not an image")
    with pytest.raises(xai.ImageError) as info:
        xai.load_image(path)
    assert_one_line(info.value)


# --- library: parameters ----------------------------------------------------------------------

@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_bad_parameter_is_refused(case, bundled):
    kwargs = _explain_kwargs(case)
    _, error, expected = BAD_PARAMS[case]
    model = kwargs.pop("model", bundled)
    with pytest.raises(error) as info:
        xai.explain(model, CAT, **kwargs)
    assert isinstance(info.value, xai.XaiError)
    assert expected in assert_one_line(info.value)
    assert_clean(bundled)
    assert_good_request(bundled)


def test_unknown_model_names_are_refused():
    for name in ("", "   ", "no_such_model_xyz", "torchvision/no_such", "../../etc/passwd",
                 "<script>alert(1)</script>", "resnet18; rm -rf /"):
        with pytest.raises(xai.UnknownModelError) as info:
            xai.load_model(name, pretrained=False)
        assert_one_line(info.value)
    with pytest.raises(xai.UnknownModelError):
        xai.load_model(None)  # type: ignore[arg-type]


def test_offline_pretrained_download_fails_fast_and_clearly(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(xai.WeightsUnavailableError) as info:
        xai.load_model("resnet18", pretrained=True)
    assert time.perf_counter() - t < 10
    assert "resnet18" in assert_one_line(info.value)


def test_no_network_fails_fast_without_the_offline_flag(monkeypatch):
    """No DNS (as on a box without network) and HF_HUB_OFFLINE unset: a clear error at once,
    not a minute of retries (sleeps are recorded, not slept, so this test is fast either way)."""
    import socket
    import time
    import types

    import huggingface_hub.constants as hub_constants
    from huggingface_hub.utils import _http

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("XAI_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    lookups: list[str] = []
    waits: list[float] = []

    def no_dns(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (test: no network)")

    fake_time = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time)
                                         if not k.startswith("_")})
    fake_time.sleep = waits.append
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(_http, "time", fake_time)
    with pytest.raises(xai.WeightsUnavailableError) as info:
        xai.load_model("resnet18", pretrained=True)
    assert "resnet18" in assert_one_line(info.value)
    assert lookups, "the test did simulate the missing network"
    assert sum(waits) < 3 and len(lookups) <= 2, (waits, lookups)


@pytest.mark.parametrize("target", ["²", "①", "1" * 5000], ids=["superscript", "circled",
                                                                 "5000-digits"])
def test_odd_digit_targets_are_refused(target, bundled):
    with pytest.raises(xai.TargetError):
        xai.explain(bundled, CAT, targets=target, **CHEAP)


def test_huge_conv_index_is_refused(bundled):
    with pytest.raises(xai.LayerError):
        xai.resolve_layer(bundled, "conv:" + "9" * 5000)


@pytest.mark.parametrize("field", ["model", "targets", "depths", "methods"])
def test_long_user_text_is_clipped_in_messages(field, bundled):
    long = "<b>" + "x" * 10_000 + "\n</b>"
    kwargs = {"model": bundled, **CHEAP, field: [long] if field in ("depths", "methods") else long}
    with pytest.raises(xai.XaiError) as info:
        xai.explain(kwargs.pop("model"), CAT, **kwargs)
    assert_one_line(info.value)


def test_top_k_upper_bound_is_the_class_count(bundled):
    with pytest.raises(xai.TargetError, match="1..1000"):
        xai.explain(bundled, CAT, top_k=1001, **CHEAP)


# --- no hooks, no state left after failures inside the passes --------------------------------

def _raiser(message: str):
    def fail(*args, **kwargs):
        raise RuntimeError(message)
    return fail


class _Boom(CamMethod):
    name = "boom-test"
    uses_gradients = True

    def weights(self, acts, grads):
        raise RuntimeError("boom in a CAM method")


@pytest.mark.parametrize("where", ["forward", "cam", "guided", "backward"])
@pytest.mark.parametrize("training", [False, True])
def test_failure_inside_a_pass_leaves_no_hook(where, training, bundled, monkeypatch):
    kwargs = dict(CHEAP)
    if where == "forward":  # raised while the layer hooks are on
        monkeypatch.setattr(xai.passes, "class_logits", _raiser("boom in the forward"))
    elif where == "cam":
        register_method(_Boom())
        kwargs["methods"] = ("gradcam", "boom-test")
    elif where == "guided":  # raised while the guided-backprop hooks are on
        calls = []
        real = xai.passes.class_logits

        def second_fails(out):
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("boom in the guided pass")
            return real(out)

        monkeypatch.setattr(xai.passes, "class_logits", second_fails)
        kwargs["guided"] = True
    else:
        monkeypatch.setattr(torch.autograd, "grad", _raiser("boom in the backward"))
    bundled.module.train(training)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            xai.explain(bundled, CAT, **kwargs)
        assert_clean(bundled, training=training)
    finally:
        bundled.module.eval()
        CAM_METHODS.pop("boom-test", None)
        monkeypatch.undo()
    assert_good_request(bundled)
    assert_clean(bundled)


def test_success_leaves_no_hook_and_keeps_training_flag(bundled):
    bundled.module.train(True)
    try:
        r = xai.explain(bundled, CAT, guided=True, top_k=2)
        assert len(r.targets) == 2 and r.has_guided
        assert_clean(bundled, training=True)
    finally:
        bundled.module.eval()
    assert_clean(bundled)


# --- CLI --------------------------------------------------------------------------------------

@pytest.fixture()
def cli_model(bundled, monkeypatch):
    """The CLI with the already loaded bundled model (unknown names still go to load_model)."""
    real = cli.load_model

    def load(name: str, pretrained: bool = True) -> xai.LoadedModel:
        if name == xai.DEFAULT_MODEL and pretrained:
            return bundled
        return real(name, pretrained=pretrained)

    monkeypatch.setattr(cli, "load_model", load)
    return bundled


def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_cli_error(rc, err: str, expected: str = "") -> None:
    assert rc not in (0, None), rc
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and expected in lines[0], err


CLI_PARAMS = {
    "unknown model": (["--model", "no_such_model_xyz"], "unknown model"),
    "depth conv:0": (["--depths", "conv:0"], "conv:0"),
    "depth conv:99999": (["--depths", "conv:99999"], "conv:99999"),
    "depth -0.1": (["--depths", "-0.1"], "outside"),
    "missing module": (["--depths", "blocks.99.conv"], "blocks.99.conv"),
    "unknown method": (["--methods", "lime"], "lime"),
    "empty method": (["--methods", ""], "method"),
    "class 1000": (["--target", "1000"], "out of range"),
    "unknown label": (["--target", "unicorn"], "unicorn"),
    "top-k 0": (["--top-k", "0"], "out of range"),
    "top-k 1001": (["--top-k", "1001"], "out of range"),
}


@pytest.mark.parametrize("name", [*bad_files(), "huge_file.png"])
def test_cli_bad_file(name, files, cli_model, tmp_path, capsys):
    rc, _, err = _run_cli(["explain", str(files[name]), "--methods", "gradcam", "--depths",
                           "last", "--out", str(tmp_path / "out")], capsys)
    _assert_cli_error(rc, err)
    assert_clean(cli_model)


@pytest.mark.parametrize("case", list(CLI_PARAMS))
def test_cli_bad_parameter(case, cli_model, tmp_path, capsys):
    args, expected = CLI_PARAMS[case]
    base = {"--methods": ["gradcam"], "--depths": ["last"]}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = [value]
    argv = ["explain", str(CAT), "--out", str(tmp_path / "out")]
    for flag, values in base.items():
        argv += [flag, *values]
    rc, _, err = _run_cli(argv, capsys)
    _assert_cli_error(rc, err, expected)
    assert_clean(cli_model)
    rc, out, err = _run_cli(["explain", str(CAT), "--methods", "gradcam", "--depths", "last",
                             "--out", str(tmp_path / "good")], capsys)
    assert rc == 0 and "tabby" in out, err
    assert (tmp_path / "good" / "cat_gallery.png").is_file()
    assert (tmp_path / "good" / "manifest.json").is_file()


@pytest.mark.parametrize("name", list(good_files()))
def test_cli_good_file(name, files, cli_model, tmp_path, capsys):
    rc, out, err = _run_cli(["explain", str(files[name]), "--methods", "gradcam", "--depths",
                             "last", "--fit", "full", "--out", str(tmp_path)], capsys)
    assert rc == 0, err
    assert "Traceback" not in err and len(list(tmp_path.glob("*_gallery.png"))) == 1


@pytest.mark.parametrize("case", ["alpha", "out is a file"])
def test_cli_other_bad_options(case, cli_model, tmp_path, capsys):
    argv = ["explain", str(CAT), "--methods", "gradcam", "--depths", "last"]
    if case == "alpha":
        argv += ["--alpha", "2", "--out", str(tmp_path)]
    else:
        (tmp_path / "taken").write_text("a file")
        argv += ["--out", str(tmp_path / "taken")]
    rc, _, err = _run_cli(argv, capsys)
    _assert_cli_error(rc, err)


def test_cli_process_prints_one_line_and_exits_nonzero(files, tmp_path):
    """The real ``python -m xai`` process: one 'error: ...' line on stderr, no traceback."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "xai", "explain", str(files["text.txt"]),
                           "--out", str(tmp_path / "out")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    _assert_cli_error(proc.returncode, proc.stderr, "text.txt: not a readable image")
    assert proc.stdout == ""


def test_header_size_checks_the_limits_without_decoding(tmp_path):
    data = encode(noise(64, 48), "PNG")
    assert images.header_size(data) == (64, 48)
    (tmp_path / "a.png").write_bytes(data)
    assert images.header_size(tmp_path / "a.png") == (64, 48)
    with pytest.raises(xai.ImageError, match="8000x6000 is over the 40,000,000-pixel limit"):
        images.header_size(png_header_only(8000, 6000))  # a decode would fail as truncated
    with pytest.raises(xai.ImageError, match="over 40,000,000 pixels"):
        images.header_size(png_header_only(30000, 30000))
    with pytest.raises(xai.ImageError, match="file-size limit"):
        images.header_size(tmp_path / "a.png", max_bytes=len(data) - 1)
    with pytest.raises(xai.ImageError, match="not found"):
        images.header_size(tmp_path / "missing.png")
    with pytest.raises(xai.ImageError, match="not a readable image"):
        images.header_size(b"%!PS-Adobe-3.0 EPSF-3.0\n")
