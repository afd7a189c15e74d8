"""The running app under hostile input and load (through ``gradio_client``, like any remote
client), and bounded resources in one long-lived process.

* the battery of files and parameters of ``test_hostile_inputs`` via the ``explain`` endpoint:
  one clear error message each, and the next good request works;
* 16 concurrent requests of mixed images and models: each response matches a direct library
  call on its own image, the concurrency limit holds, the app answers health requests meanwhile;
* the queue bound: requests over it are refused, not piled up;
* user text never comes back as live HTML;
* 100 sequential gallery requests keep the resident memory flat; no hook is ever left behind.
"""

from __future__ import annotations

import gc
import html
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from app_server import ROOT, explain_with_files, running_app
from PIL import Image
from test_hostile_inputs import (
    CAT_CLASSES,
    assert_clean,
    bad_files,
    encode,
    good_files,
    write_files,
)

import xai
from xai.render import gallery

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

EXAMPLES = ROOT / "examples"
ALL_METHODS = ["gradcam", "gradcam++", "eigencam", "xgradcam"]
RANDOM_MODEL = "xai_test_random_mobilenet"  # registered here; served only with XAI_ALLOW_ANY_MODEL


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def url() -> str:
    return running_app()


@pytest.fixture(scope="module")
def client(url: str) -> Client:
    """A client that leaves the result files on the server (their names and URLs come back)."""
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_files(tmp_path_factory.mktemp("app-hostile"))


def call(client: Client, image: str | Path, model: str = xai.DEFAULT_MODEL, mode: str = "stages",
         methods=("gradcam",), target: str = "top-1", top_k: float = 1, guided: bool = False,
         fit: str = "crop"):
    return explain_with_files(client, handle_file(str(image)), model, mode, list(methods),
                              target, top_k, guided, fit)


def submit(client: Client, image: str | Path, model: str = xai.DEFAULT_MODEL,
           mode: str = "stages", methods=("gradcam",), target: str = "top-1", top_k: float = 1,
           guided: bool = False, fit: str = "crop"):
    return client.submit(handle_file(str(image)), model, mode, list(methods), target, top_k,
                         guided, fit, api_name="/explain")


def assert_app_error(exc: BaseException, expected: str = "") -> str:
    msg = str(exc)
    assert isinstance(exc, AppError), repr(exc)
    assert msg and "\n" not in msg and "Traceback" not in msg and len(msg) < 400, msg
    assert expected in msg, msg
    return msg


def good_request_works(client: Client) -> None:
    *_, manifest, _sheet, _zip, _raw = call(client, EXAMPLES / "cat.png")
    assert manifest["predictions"][0]["label"] in CAT_CLASSES


def app_models() -> list[xai.LoadedModel]:
    from xai_app import service

    return [service.CACHE.peek(n) for n in service.CACHE.names() if service.CACHE.peek(n)]


# --- the battery through the app ------------------------------------------------------------

def test_app_refuses_every_bad_file_and_keeps_serving(client, files):
    for name, (_data, expected) in bad_files().items():  # the library's own messages
        t = time.perf_counter()
        with pytest.raises(AppError) as info:
            call(client, files[name])
        assert_app_error(info.value, expected)
        assert time.perf_counter() - t < 30, f"{name}: no hang"
    good_request_works(client)
    for model in app_models():
        assert_clean(model)


APP_GOOD = ("gray16.png", "rgba_transparent.png", "cmyk.jpg", "exif_orientation6.jpg",
            "animated.gif", "photo.webp", "strip_8x5000.png")  # the decoders' different paths


def test_app_gives_correct_results_for_good_files(client, files):
    for name in APP_GOOD:
        _data, (w, h), _check = good_files()[name]
        *_, manifest, _sheet, _zip, _raw = call(client, files[name], fit="full")
        assert manifest["image_size"] == [w, h] if max(w, h) <= 512 else max(
            manifest["image_size"]) == 512, name
        assert manifest["explained_box"] == [0, 0, w, h], f"{name}: orientation and size kept"
        if name in ("gray.png", "cmyk.jpg", "exif_orientation6.jpg", "photo.webp", "palette.gif"):
            assert manifest["predictions"][0]["label"] in CAT_CLASSES, name
    *_, manifest, _sheet, _zip, _raw = call(client, files["exif_orientation6.jpg"], fit="crop")
    assert manifest["explained_box"] == [62, 12, 237, 187], "the crop of the upright 300x200 cat"


BAD_APP_PARAMS = {  # keyword of call() -> value, expected substring of the message
    "unknown model": ({"model": "no_such_model_xyz"}, "not offered"),
    "a timm model not on the list": ({"model": "resnet18"}, "not offered"),
    "empty model": ({"model": ""}, "model"),
    "bad mode": ({"mode": "layers"}, "stages"),
    "no method": ({"methods": []}, "at least one method"),
    "unknown method": ({"methods": ["gradcam", "lime"]}, "lime"),
    "class 1000": ({"target": "1000"}, "out of range"),
    "class -1": ({"target": "-1"}, "out of range"),
    "unknown label": ({"target": "unicorn"}, "unicorn"),
    "top-k 0": ({"top_k": 0}, "top_k must be a whole number from 1 to 5, not 0"),
    "top-k 1001": ({"top_k": 1001}, "top_k must be a whole number from 1 to 5, not 1001"),
    "top-k -3": ({"top_k": -3}, "top_k must be a whole number from 1 to 5, not -3"),
    "bad fit": ({"fit": "stretch"}, "crop"),
}


def test_app_refuses_every_bad_parameter_and_keeps_serving(client):
    for case, (kwargs, expected) in BAD_APP_PARAMS.items():
        with pytest.raises(AppError) as info:
            call(client, EXAMPLES / "cat.png", **kwargs)
        assert_app_error(info.value, expected), case
    good_request_works(client)
    for model in app_models():
        assert_clean(model)


def test_app_model_list_is_closed_unless_opened_by_env(client, monkeypatch):
    with pytest.raises(AppError, match="not offered"):
        call(client, EXAMPLES / "cat.png", model="resnet18")
    monkeypatch.setenv("XAI_ALLOW_ANY_MODEL", "1")
    with pytest.raises(AppError) as info:  # accepted now, but its weights cannot be had offline
        call(client, EXAMPLES / "cat.png", model="resnet18")
    assert_app_error(info.value, "could not be loaded")
    with pytest.raises(AppError) as info:
        call(client, EXAMPLES / "cat.png", model="no_such_model_xyz")
    assert_app_error(info.value, "unknown model")


def test_app_offline_download_fails_fast_and_other_models_still_work(client):
    t = time.perf_counter()
    with pytest.raises(AppError) as info:
        call(client, EXAMPLES / "cat.png", model="resnet50")  # on the list, not cached here
    assert_app_error(info.value, "could not be loaded")
    assert time.perf_counter() - t < 15
    good_request_works(client)


def test_app_upload_over_the_size_limit_is_refused(url, client, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(encode(Image.new("RGB", (64, 64)), "PNG") + os.urandom(11 * 2**20))
    with pytest.raises(ValueError, match="maximum file size"):  # the client checks first
        call(client, big)
    with open(big, "rb") as fh:  # and the server refuses it on its own
        res = httpx.post(f"{url.rstrip('/')}/gradio_api/upload",
                         files={"files": ("big.png", fh, "image/png")}, timeout=60)
    assert res.status_code == 413, res.status_code
    good_request_works(client)


UNESCAPED = ("<script", "<img", "<b>")


@pytest.mark.parametrize("field, value", [
    ("model", "<script>alert(1)</script>"), ("model", "<img src=x onerror=alert(1)>"),
    ("target", "<img src=x onerror=alert(1)>"), ("target", "<b>bold</b>"),
])
def test_user_text_never_comes_back_as_html(client, field, value):
    with pytest.raises(AppError) as info:
        call(client, EXAMPLES / "cat.png", **{field: value})
    msg = str(info.value)
    assert not any(tag in msg for tag in UNESCAPED), msg
    assert html.escape(value, quote=False) in msg


def test_user_text_never_reaches_captions_or_file_names(client, tmp_path):
    evil = tmp_path / "<img src=x onerror=alert(1)>.png"
    evil.write_bytes((EXAMPLES / "cat.png").read_bytes())
    items, top5, _table, manifest, sheet, archive, _raw = call(client, evil)
    for item in items:
        assert not any(tag in item["caption"] for tag in UNESCAPED), item["caption"]
    for file in (sheet, archive, *(item["image"] for item in items)):
        assert not any(c in file["path"] + file["url"] for c in "<>\"'"), file
    assert not any(tag in label["label"] for label in top5["confidences"] for tag in UNESCAPED)


# --- load -----------------------------------------------------------------------------------

def _random_mobilenet(pretrained: bool) -> torch.nn.Module:
    import timm

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return timm.create_model("mobilenetv3_small_050", pretrained=False)


@pytest.fixture()
def any_model(monkeypatch):
    """A second, small model (random weights, no download), served through the env switch."""
    xai.register_model(RANDOM_MODEL, _random_mobilenet)
    monkeypatch.setenv("XAI_ALLOW_ANY_MODEL", "1")
    yield xai.load_model(RANDOM_MODEL, device="cpu")
    xai.unregister_model(RANDOM_MODEL)


@contextmanager
def counting_computations(monkeypatch):
    """Wrap the app's compute step: the most computations that ever ran at the same time."""
    from xai_app import service

    real = service.compute
    lock = threading.Lock()
    state = {"now": 0, "max": 0, "calls": 0}

    def counted(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["calls"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(service, "compute", counted)
    yield state


def _variants(folder: Path) -> list[Path]:
    """Eight different pictures (lossless, so the app sees the very same pixels)."""
    cat, coffee = Image.open(EXAMPLES / "cat.png"), Image.open(EXAMPLES / "coffee.png")
    rocket, both = Image.open(EXAMPLES / "rocket.png"), Image.open(EXAMPLES / "cat_and_coffee.png")
    pics = {"cat": cat, "coffee": coffee, "rocket": rocket, "both": both,
            "cat_mirrored": cat.transpose(Image.FLIP_LEFT_RIGHT),
            "coffee_gray": coffee.convert("L"), "rocket_turned": rocket.rotate(90, expand=True),
            "both_left": both.crop((0, 0, 256, 512))}
    out = []
    for name, img in pics.items():
        out.append(folder / f"{name}.png")
        img.save(out[-1])
    return out


def test_sixteen_concurrent_requests_each_get_their_own_answer(
        client, url, any_model, bundled, monkeypatch, tmp_path):
    from xai_app import heap

    images = _variants(tmp_path)
    jobs_spec = []
    for i in range(16):
        model = RANDOM_MODEL if i % 4 == 3 else xai.DEFAULT_MODEL
        jobs_spec.append(dict(image=images[i % 8], model=model, fit=("crop", "full")[i % 2],
                              mode=("stages", "convs")[i // 8],
                              methods=ALL_METHODS[i % 4: i % 4 + 1 + i % 2],
                              top_k=1 + (i % 3 == 0),
                              guided=i == 5))
    # the reference answers, from the library directly (predictions need one forward)
    expected = []
    for spec in jobs_spec:
        model = any_model if spec["model"] == RANDOM_MODEL else bundled
        r = xai.explain(model, spec["image"], methods=("gradcam",), depths=("last",),
                        fit=spec["fit"], top_k=spec["top_k"])
        expected.append(r)
    with counting_computations(monkeypatch) as state:
        t0 = time.perf_counter()
        jobs = [submit(client, **spec) for spec in jobs_spec]
        # health while loaded: the queue-less endpoint and the config page answer at once
        t = time.perf_counter()
        assert client.predict(api_name="/models")[0] == xai.DEFAULT_MODEL
        assert httpx.get(f"{url.rstrip('/')}/config", timeout=10).status_code == 200
        health_s = time.perf_counter() - t
        pending = sum(not job.done() for job in jobs)
        results = [job.result(timeout=300) for job in jobs]
        total_s = time.perf_counter() - t0
    assert pending > 0, "the health requests were answered during the load"
    assert health_s < 5, f"health answered in {health_s:.1f} s under load"
    assert state["calls"] == 16 and state["max"] <= heap.concurrency(), state
    for spec, want, got in zip(jobs_spec, expected, results, strict=True):
        items, _top5, _table, manifest, _sheet, _zip, _raw = got
        assert manifest["model"] == spec["model"]
        assert manifest["app"]["methods"] == spec["methods"]
        assert [p["index"] for p in manifest["predictions"]] == [p.index for p in want.predictions]
        assert np.allclose([p["probability"] for p in manifest["predictions"]],
                           [p.probability for p in want.predictions], atol=1e-4)
        assert [t["index"] for t in manifest["targets"]] == [t.index for t in want.targets]
        panels = len(spec["methods"]) + spec["guided"]
        assert len(items) == panels * 3 * spec["top_k"], spec
    for model in app_models():
        assert_clean(model)
    print(f"\n16 concurrent requests: {total_s:.1f} s, health {health_s * 1000:.0f} ms, "
          f"{pending} pending at the health check")


def test_queue_bound_refuses_the_excess_and_recovers(client, monkeypatch, tmp_path):
    from xai_app import heap, service, ui

    release = threading.Event()

    def blocked(*args, **kwargs):
        release.wait(60)
        raise xai.XaiError("released by the test")

    small = tmp_path / "small.png"
    Image.open(EXAMPLES / "cat.png").resize((64, 48)).save(small)
    monkeypatch.setattr(service, "compute", blocked)
    extra = 4
    jobs = []
    try:
        for _ in range(ui.QUEUE_SIZE + heap.concurrency() + extra):
            jobs.append(submit(client, small))
        deadline = time.time() + 60
        while time.time() < deadline and sum(job.done() for job in jobs) < extra:
            time.sleep(0.2)
        refused = [job for job in jobs if job.done()]
    finally:
        release.set()
    errors = []
    for job in jobs:
        try:
            job.result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - every job fails here, by design
            errors.append(str(exc))
    assert len(refused) >= extra, f"{len(refused)} refused of {len(jobs)}"
    assert sum("queue is full" in e.lower() for e in errors) >= extra, errors[:5]
    assert sum("released by the test" in e for e in errors) <= ui.QUEUE_SIZE + heap.concurrency()
    monkeypatch.undo()
    good_request_works(client)


# --- bounded memory, no hooks ---------------------------------------------------------------

def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_hundred_gallery_requests_keep_memory_flat(bundled, capsys):
    pictures = [EXAMPLES / f"{n}.png" for n in ("cat", "coffee", "rocket", "cat_and_coffee")]
    rss = {}
    t = time.perf_counter()
    for i in range(1, 101):
        r = xai.explain(bundled, pictures[i % 4], targets=None, top_k=1 + (i % 5 == 0))
        sheet = gallery(r)
        assert sheet.size[0] > 0 and len(r.targets) == 1 + (i % 5 == 0)
        del r, sheet
        if i in (10, 50, 100):
            gc.collect()
            rss[i] = _rss_mib()
            assert_clean(bundled)
    seconds = time.perf_counter() - t
    with capsys.disabled():
        print(f"\nRSS after request 10: {rss[10]:.0f} MiB, 50: {rss[50]:.0f} MiB, "
              f"100: {rss[100]:.0f} MiB; {seconds / 100:.2f} s per gallery request")
    assert rss[100] <= rss[10] * 1.10, rss


def test_model_cache_is_bounded():
    from xai_app.service import ModelCache

    loads = []

    def loader(name: str):
        loads.append(name)
        return xai.LoadedModel(name, torch.nn.Identity(), ["a"])

    cache = ModelCache(size=2, loader=loader)
    for name in ("a", "b", "a", "c", "d", "a"):
        cache.get(name)
        assert len(cache.names()) <= 2
    assert loads == ["a", "b", "c", "d", "a"] and cache.names() == ["d", "a"]
