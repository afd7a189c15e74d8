"""Property-based tests (hypothesis): arbitrary bytes, arrays, depth strings, targets, methods.

Each property is "a correct result or the typed error, never another exception". Examples are
derandomized so CI runs the same cases every time.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import xai
from xai import images

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=60)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def check_image_or_error(source) -> None:
    try:
        img = xai.load_image(source)
    except xai.ImageError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    assert min(img.size) >= images.MIN_SIDE and img.size[0] * img.size[1] <= images.MAX_PIXELS
    np.asarray(img)  # fully decoded


@lru_cache(maxsize=1)
def seeds() -> list[bytes]:
    """Small valid files in every accepted format: mutated, they reach deep into the decoders."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    out = []
    for fmt, kw in (("PNG", {}), ("JPEG", {"quality": 80}), ("GIF", {}), ("WEBP", {}),
                    ("BMP", {}), ("TIFF", {"compression": "tiff_deflate"}), ("PPM", {}),
                    ("ICO", {"sizes": [(16, 16)]}), ("PNG", {"optimize": True})):
        buf = io.BytesIO()
        (img.convert("P") if fmt == "GIF" else img).save(buf, fmt, **kw)
        out.append(buf.getvalue())
    return out


MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"GIF87a", b"BM", b"II*\0",
          b"RIFF\0\0\0\0WEBPVP8 ", b"MM\0*", b"P6\n", b"\0\0\1\0", b"%PDF-", b"%!PS-Adobe",
          b"\0\0\0\x1cftypavif"]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=4096))
@example(b"")
@example(b"\x89PNG\r\n\x1a\n")
def test_arbitrary_bytes_give_rgb_or_image_error(data):
    check_image_or_error(data)


@FUZZ
@given(st.sampled_from(MAGICS).flatmap(lambda magic: st.binary(max_size=2048).map(
    lambda rest: magic + rest)))
def test_bytes_behind_a_real_magic_give_rgb_or_image_error(data):
    check_image_or_error(data)


@FUZZ
@given(mutated())
def test_mutated_real_files_give_rgb_or_image_error(data):
    check_image_or_error(data)


@FEW
@given(hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.int64, np.float16, np.float32,
                           np.float64, np.bool_, np.complex64, np.object_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=20)))
def test_arbitrary_arrays_give_rgb_or_image_error(arr):
    check_image_or_error(arr)


@FUZZ
@given(size=st.tuples(st.integers(1, 100_000), st.integers(1, 100_000)),
       input_size=st.tuples(st.integers(1, 1024), st.integers(1, 1024)),
       crop_pct=st.floats(0.05, 2.0))
def test_crop_box_is_inside_and_never_empty(size, input_size, crop_pct):
    left, top, right, bottom = images.crop_box(size, input_size, crop_pct, "crop")
    assert 0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]
    assert abs((left + right) - size[0]) <= 1 and abs((top + bottom) - size[1]) <= 1  # centred


# --- depth strings ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def module_names() -> list[str]:
    return [n for n, _ in xai.load_model(pretrained=False).module.named_modules() if n]


def depth_strings() -> st.SearchStrategy[str]:
    names = st.deferred(lambda: st.sampled_from(module_names()))  # loaded at the first draw
    return st.one_of(
        st.text(max_size=40),
        st.sampled_from(["first", "middle", "last", "First", " last ", "conv:", "conv:-1",
                         "conv: 3", "conv:+3", "conv:0x10", "1e-3", "inf", "-inf", "nan", "1_0",
                         ".5", "0.", "", ".", "..", "blocks.", ".blocks", "blocks..0",
                         "__class__", "_modules", "training", "forward", "conv_stem.weight"]),
        st.from_regex(r"\Aconv:-?[0-9]{1,7}\Z"),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        names,
        st.tuples(names, st.sampled_from([".", "..", ".0", ".99", ".weight", "x", " ", "\n"]))
        .map("".join),
    )


@FUZZ
@given(depth=depth_strings(), mode=st.sampled_from(["stages", "convs"]))
@example(depth="conv:" + "9" * 4000, mode="stages")
def test_arbitrary_depth_strings_give_layer_or_layer_error(depth, mode, bundled):
    try:
        info = xai.resolve_layer(bundled, depth, mode)
    except xai.LayerError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(info, xai.LayerInfo)
    bundled.module.get_submodule(info.name)  # a real module
    c, h, w = info.shape
    assert c >= 1 and h > 1 and w > 1


@FEW
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_arbitrary_float_depths(value, bundled):
    try:
        info = xai.resolve_layer(bundled, value)
    except xai.LayerError:
        assert not (0.0 <= value <= 1.0)
        return
    assert 0.0 <= value <= 1.0 and info in xai.stage_layers(bundled)


# --- targets, methods, top_k: validated before any pixel is read -----------------------------

def refused_or_valid(model: xai.LoadedModel, expected_error: type, **kwargs) -> bool:
    """True if accepted: valid parameters reach the (empty) image and fail there; bad ones are
    refused first with ``expected_error``."""
    try:
        xai.explain(model, b"", **kwargs)
    except expected_error as exc:
        assert str(exc) and "\n" not in str(exc)
        return False
    except xai.ImageError as exc:
        assert "empty" in str(exc)
        return True
    raise AssertionError("an empty image was accepted")


@FUZZ
@given(target=st.one_of(st.text(max_size=30), st.integers(), st.sampled_from(
    ["tabby", "TABBY", " tabby ", "tiger cat", "281", "-0", "0", "999", "1000", "-1"]),
    st.lists(st.one_of(st.text(max_size=10), st.integers(-5, 1005)), max_size=4)))
def test_arbitrary_targets(target, bundled):
    accepted = refused_or_valid(bundled, xai.TargetError, targets=target, methods=("gradcam",),
                                depths=("last",))
    if isinstance(target, int) and not isinstance(target, bool):
        assert accepted == (0 <= target < 1000)


@FUZZ
@given(top_k=st.one_of(st.integers(-10**6, 10**6), st.floats(), st.booleans(), st.none()))
def test_arbitrary_top_k(top_k, bundled):
    accepted = refused_or_valid(bundled, xai.TargetError, top_k=top_k, methods=("gradcam",),
                                depths=("last",))
    if isinstance(top_k, int) and not isinstance(top_k, bool):
        assert accepted == (1 <= top_k <= 1000)


@FUZZ
@given(methods=st.one_of(st.text(max_size=40), st.lists(st.text(max_size=15), max_size=5)))
def test_arbitrary_methods(methods, bundled):
    refused_or_valid(bundled, xai.MethodError, methods=methods, depths=("last",))


def test_known_method_spellings_are_accepted(bundled):
    for spelling in ("GradCAM", "grad-cam++", "gradcam_plusplus", " eigen-cam ", "XGrad-CAM",
                     "gradcam,eigencam"):
        assert refused_or_valid(bundled, xai.MethodError, methods=spelling, depths=("last",))
