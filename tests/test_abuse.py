"""The running app under abuse, on loopback: bounded disk, one size and pixel limit on every way
an image arrives, one clear message for every bad parameter, and a bounded soak.

* the disk budget (``xai_app.budget.RunStore``): oldest runs go first, before writing; folders
  in use are kept; Gradio copies none of the returned files into its cache;
* the image limits on each path: an upload, a ``data:`` URL, an http URL, a file path in the
  API payload (raw HTTP against ``/gradio_api/call/explain``, as any client could send);
* the parameter probes: each gets one message that names the parameter, never ``null``;
* the soak: worst-case requests (large image, top-5, Guided, every method) under a small budget.
"""

from __future__ import annotations

import base64
import gc
import http.server
import json
import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from app_server import ROOT, call_with_files, running_app
from PIL import Image
from test_hostile_inputs import encode, png_header_only

from xai_app import budget, gate

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")]

CAT = ROOT / "examples" / "cat.png"
ALL_METHODS = ["gradcam", "gradcam++", "eigencam", "xgradcam"]


@pytest.fixture(scope="module")
def url() -> str:
    return running_app().rstrip("/")


def upload(url: str, data: bytes, name: str = "image.png") -> str:
    res = httpx.post(f"{url}/gradio_api/upload", files={"files": (name, data)}, timeout=60)
    assert res.status_code == 200, res.text
    return res.json()[0]


def file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def call(url: str, data: list, api: str = "explain") -> tuple[str, object]:
    """("complete", outputs) or ("error", message) of a raw queued call."""
    res = httpx.post(f"{url}/gradio_api/call/{api}", json={"data": data}, timeout=60)
    if res.status_code != 200:
        return "http", res.status_code
    event_id = res.json()["event_id"]
    text = httpx.get(f"{url}/gradio_api/call/{api}/{event_id}", timeout=300).text
    events = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    payloads = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    kind = "error" if "error" in events else events[-1]
    payload = json.loads(payloads[events.index(kind)])
    if kind == "error":
        return kind, (payload or {}).get("error") if isinstance(payload, dict) else payload
    return kind, payload


def request(image: object, **kw) -> list:
    args = dict(model="efficientnet_lite0", mode="stages", methods=["gradcam"], target="top-1",
                top_k=1, guided=False, fit="crop")
    args.update(kw)
    return [image, *args.values()]


def assert_message(kind: str, message: object, *expected: str) -> str:
    assert kind == "error", (kind, str(message)[:200])
    assert isinstance(message, str) and message, message  # never null
    assert "\n" not in message and "Traceback" not in message and len(message) < 400, message
    for part in expected:
        assert part in message, message
    return message


def assert_serves(url: str) -> None:
    kind, out = call(url, request(file_data(upload(url, CAT.read_bytes(), "cat.png")),
                                  methods=ALL_METHODS))
    assert kind == "complete" and len(out[0]) == 12, (kind, str(out)[:200])


# --- the disk budget --------------------------------------------------------------------------

def test_budget_sizes_parse():
    assert budget.parse_bytes("1GB") == 10**9 and budget.parse_bytes("64 MiB") == 64 * 2**20
    assert budget.parse_bytes("1500") == 1500 and budget.parse_bytes("0.5gb") == 5 * 10**8
    for bad in ("", "lots", "-1GB", "0", "1 TB"):
        with pytest.raises(ValueError, match="not a byte size"):
            budget.parse_bytes(bad)


def _fill(folder: Path, size: int) -> Path:
    (folder / "data").write_bytes(b"\0" * size)
    return folder


def test_budget_removes_the_oldest_runs_before_writing_and_keeps_busy_ones(tmp_path):
    store = budget.RunStore(tmp_path, budget=10_000)
    runs = []
    for i in range(4):
        runs.append(_fill(store.reserve(3_000), 3_000))
        stamp = time.time() - 100 + i  # creation order, oldest first (all within the hour)
        os.utime(runs[-1], (stamp, stamp))
        store.release([runs[-1]])
    assert [r.exists() for r in runs] == [False, True, True, True]  # 4 x 3000 > 10000
    busy = store.reserve(9_000)  # room for 9000 more: only the newest of the old runs can stay
    assert [r.exists() for r in runs] == [False, False, False, False]
    _fill(busy, 9_000)
    held = store.reserve(5_000)  # the busy folder is in use: kept, though over the budget
    assert busy.exists() and held.exists()
    store.release([busy, held])
    assert store.used() <= store.budget and held.exists()


def test_folders_left_by_an_earlier_process_are_measured_once_and_still_evicted(tmp_path,
                                                                                 monkeypatch):
    for i in range(30):  # a restarted Space: run folders this process did not write
        (tmp_path / f"run-old{i:02d}").mkdir()
        _fill(tmp_path / f"run-old{i:02d}", 100)
    walked = []
    real = budget.folder_bytes
    monkeypatch.setattr(budget, "folder_bytes", lambda p: walked.append(p) or real(p))
    store = budget.RunStore(tmp_path, budget=10_000)
    for _ in range(5):
        store.release([_fill(store.reserve(100), 100)])
    old = [p for p in walked if p.name.startswith("run-old")]
    assert len(old) == len(set(old)) == 30  # each old folder walked once, not per request
    store.reserve(9_000)  # the budget still counts them: old folders go first
    assert sum((tmp_path / f"run-old{i:02d}").exists() for i in range(30)) < 30


def test_budget_counts_uploads_and_removes_them_after_the_runs(tmp_path):
    store = budget.RunStore(tmp_path / "runs", budget=10_000)
    (tmp_path / "up").mkdir()
    files = [tmp_path / "up" / f"upload{i}.png" for i in range(3)]
    for file in files:  # created in this order: ctime oldest first
        file.write_bytes(b"\0" * 3000)
    store.uploads = {str(f) for f in files}
    run = _fill(store.reserve(0), 2000)
    store.release([run])  # 9000 of uploads + 2000: the run goes first
    assert not run.exists() and all(f.exists() for f in files) and store.used() == 9000
    held = store.hold(files[0])  # a request reads the oldest upload
    made = store.reserve(4000)
    assert [f.exists() for f in files] == [True, False, True]
    assert store.uploads == {str(files[0]), str(files[2])}
    store.release([held, made])
    assert store.used() <= store.budget


def test_budget_from_env(monkeypatch):
    monkeypatch.setenv("XAI_DISK_BUDGET", "300MB")
    assert budget.budget_from_env() == 300 * 10**6
    monkeypatch.setenv("XAI_DISK_BUDGET", "much")
    assert budget.budget_from_env() == budget.DEFAULT_BUDGET
    monkeypatch.delenv("XAI_DISK_BUDGET")
    assert budget.budget_from_env() == budget.DEFAULT_BUDGET == 10**9


def test_returned_files_are_not_copied_into_gradios_cache(url):
    import gradio as gr

    cache = Path(gr.utils.get_upload_folder())
    before = {p for p in cache.rglob("*") if p.is_file()}
    path = upload(url, CAT.read_bytes(), "cat.png")
    kind, out = call_with_files(call, url, request(file_data(path), methods=ALL_METHODS,
                                                   guided=True))
    assert kind == "complete"
    kind, view = call(url, [file_data(path), "efficientnet_lite0", "stages", ["gradcam"],
                            "top-1", "crop", 4, False], "embeddings")
    assert kind == "complete" and len(view[1]) == 3
    assert Path(view[0]["path"]).resolve().is_relative_to(budget.STORE.root.resolve())
    new = {p for p in cache.rglob("*") if p.is_file()} - before
    assert {p.name for p in new} <= {"cat.png"}, sorted(p.name for p in new)
    files = [item["image"]["path"] for item in out[0]] + [out[4]["path"], out[5]["path"]]
    root = budget.STORE.root.resolve()
    assert all(Path(f).resolve().is_relative_to(root) for f in files)
    served = httpx.get(out[5]["url"], timeout=30)  # the ZIP, served where it was written
    assert served.status_code == 200 and served.content == Path(out[5]["path"]).read_bytes()


# --- one size and pixel limit on every path -----------------------------------------------------

def big_png(megabytes: int) -> bytes:
    """A valid PNG of about ``megabytes`` MB (incompressible pixels)."""
    side = int((megabytes * 10**6 / 3) ** 0.5) + 1
    rng = np.random.default_rng(0)
    return encode(Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8)), "PNG",
                  compress_level=0)


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def test_data_urls_get_the_upload_limits_and_are_never_decoded_by_gradio(url, monkeypatch):
    import gradio.image_utils

    def never(*args, **kwargs):
        raise AssertionError("Gradio decoded a data: URL")

    monkeypatch.setattr(gradio.image_utils, "decode_base64_to_image", never)
    huge = data_url(big_png(26))
    for payload in (huge, {"url": huge, "path": "x", "meta": {"_type": "gradio.FileData"}}):
        t = time.perf_counter()
        kind, msg = call(url, request(payload))
        assert_message(kind, msg, "image", "data: URL", "over the 10 MiB size limit")
        assert time.perf_counter() - t < 30
    bomb = data_url(png_header_only(8000, 6000))  # 48 Mpx declared, a few bytes long
    assert_message(*call(url, request({"url": bomb})), "pixel limit", "8000x6000")
    assert_message(*call(url, request("data:image/png;base64,@@@@")), "image", "base64")
    before = set(budget.STORE.root.glob("in-*"))
    kind, out = call(url, request({"url": data_url(CAT.read_bytes())}))
    assert kind == "complete" and out[3]["predictions"][0]["label"] in ("tabby", "tiger cat")
    made = set(budget.STORE.root.glob("in-*")) - before  # written once, not once per step
    assert len(made) == 1 and (made.pop() / "image").read_bytes() == CAT.read_bytes()


def test_uploaded_files_get_the_pixel_limit_and_server_paths_are_refused(url):
    bomb = upload(url, png_header_only(8000, 6000))
    assert_message(*call(url, request(file_data(bomb))), "pixel limit")
    for path in (str(CAT), "/etc/passwd", "../../etc/passwd", str(ROOT / "app.py")):
        for payload in (file_data(path), {"path": path}, path):
            assert_message(*call(url, request(payload)), "image must be a file uploaded to "
                           "this app", "a path on the server is not accepted")
    assert_serves(url)


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves /cat.png, /big.png (over the limit), /bomb.png and /lying.png (which declares a
    small Content-Length and sends more)."""

    bodies: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - the http.server API
        body = self.bodies.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if self.path != "/lying.png":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture()
def file_server():
    big = big_png(11)
    _Files.bodies = {"/cat.png": CAT.read_bytes(), "/big.png": big, "/lying.png": big,
                     "/bomb.png": png_header_only(8000, 6000)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_urls_get_the_same_limits(url, file_server, monkeypatch):
    # loopback is not a public address: refused before any connection
    assert_message(*call(url, request(file_data(f"{file_server}/cat.png"))),
                   "image: URLs must point to a public address")
    monkeypatch.setattr(gate, "is_public", lambda address: True)  # let the test server count
    for name in ("big.png", "lying.png"):
        assert_message(*call(url, request(file_data(f"{file_server}/{name}"))),
                       "image", "over the 10 MiB size limit")
    assert_message(*call(url, request(file_data(f"{file_server}/bomb.png"))), "pixel limit")
    assert_message(*call(url, request(file_data(f"{file_server}/nothing.png"))), "HTTP 404")
    kind, out = call(url, request(file_data(f"{file_server}/cat.png")))
    assert kind == "complete" and out[3]["predictions"][0]["label"] in ("tabby", "tiger cat")


def test_every_event_with_an_image_input_goes_through_the_gate(url, tmp_path):
    """Private UI events too (e.g. a model change re-predicting the image): no event lets
    Gradio decode a data: URL or read a server path."""
    import asyncio

    import gradio as gr

    import app

    store = budget.RunStore(tmp_path, budget=10**8)
    events = [fn for fn in app.demo.fns.values()
              if any(isinstance(block, gr.Image) for block in fn.inputs)]
    assert {"explain", "predict", "embeddings"} <= {fn.api_name for fn in events}
    assert len(events) > 3  # and private ones
    huge = data_url(big_png(11))
    for fn in events:
        images = tuple(i for i, b in enumerate(fn.inputs) if isinstance(b, gr.Image))
        for value, expected in ((huge, "over the 10 MiB size limit"),
                                ({"path": "/etc/passwd"}, "path on the server")):
            args = [value if i in images else None for i in range(len(fn.inputs))]
            with pytest.raises(gate.BadRequest, match=expected):
                asyncio.run(gate.check_call(fn.api_name, args, tmp_path, store, images))
    assert store.used() == 0


# --- a message for every bad parameter ------------------------------------------------------------

PROBES = {  # name -> (index in the explain arguments, value, parts of the message)
    "top_k='abc'": (5, "abc", "top_k must be a whole number from 1 to 5, not 'abc'"),
    "top_k='nan'": (5, "nan", "top_k must be a whole number"),
    "top_k='inf'": (5, "inf", "top_k must be a whole number"),
    "top_k=[1]": (5, [1], "top_k must be a whole number", "[1]"),
    "top_k=5000 digits": (5, "9" * 5000, "top_k must be a whole number"),
    "top_k=1.5": (5, 1.5, "top_k must be a whole number", "1.5"),
    "top_k=true": (5, True, "top_k must be a whole number", "True"),
    "top_k=1e308": (5, 1e308, "top_k must be a whole number"),
    "guided='yes'": (6, "yes", "guided must be true or false, not 'yes'"),
    "guided={}": (6, {"on": 1}, "guided must be true or false"),
    "guided=1": (6, 1, "guided must be true or false, not 1"),
    "guided=None": (6, None, "guided must be true or false, not None"),
    "methods=None": (3, None, "methods must be a list of method names"),
    "methods=dict": (3, {"gradcam": 1}, "methods must be a list of method names"),
    "methods='gradcam'": (3, "gradcam", "methods must be a list of method names"),
    "methods=[['gradcam']]": (3, [["gradcam"]], "methods must be a list of method names"),
    "methods=['lime']": (3, ["gradcam", "lime"], "methods: unknown method 'lime'"),
    "model=123": (1, 123, "model must be a model name, not 123"),
    "model=[]": (1, [], "model must be a model name"),
    "mode=1": (2, 1, "mode must be one of stages, convs, not 1"),
    "fit=[]": (7, [], "fit must be one of crop, full"),
    "target=5000 digits": (4, "x (class " + "9" * 5000 + ")", "target is 5,010 characters long"),
    "target=[1]": (4, [1], "target must be 'top-1', a class index or a label, not [1]"),
    "target=3.5": (4, 3.5, "target must be 'top-1', a class index or a label, not 3.5"),
    "image=123": (0, 123, "image must be a file"),
    "image={}": (0, {}, "image needs a 'path' or a data: URL"),
    "image=server path": (0, {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
                          "image must be a file uploaded to this app"),
}


def test_every_bad_parameter_gets_a_message_that_names_it(url, capsys):
    cat = file_data(upload(url, CAT.read_bytes(), "cat.png"))
    table = []
    for name, (index, value, *expected) in PROBES.items():
        data = request(cat)
        data[index] = value
        table.append((name, assert_message(*call(url, data), *expected)))
    good = request(cat)
    too_many = good + [0.5, "jet", "none", "", "extra"]
    for data, name in ((good[:3], "too few"), ([], "no"), (too_many, "too many")):
        table.append((f"{name} arguments", assert_message(
            *call(url, data), "/explain takes 8 to 12 arguments (image, model, mode, methods, "
            "target, top_k, guided, fit; optional: opacity, colormap, layer_row, layer), not")))
    assert_message(*call(url, ["efficientnet_lite0"], "layers"), "/layers takes 2 arguments")
    assert_message(*call(url, [cat, "efficientnet_lite0", "stages", ["gradcam"], "top-1",
                               "crop", 1000, False], "embeddings"),
                   "steps must be a whole number from 4 to")
    with capsys.disabled():
        print("\n" + "\n".join(f"  {name:24s} -> {msg}" for name, msg in table))
    assert_serves(url)


def test_gradios_own_processing_errors_become_messages(url):
    """A payload the gate lets through but Gradio cannot process: a message, not null."""
    cat = upload(url, CAT.read_bytes(), "cat.png")
    kind, msg = call(url, request({"path": cat, "size": "large"}))  # Gradio's file model: int
    assert_message(kind, msg, "the request could not be processed")
    assert_serves(url)


# --- soak -------------------------------------------------------------------------------------

def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))


SOAK_REQUESTS, SOAK_SECONDS, SOAK_BUDGET = 8, 120, 300 * 10**6


def test_soak_worst_case_requests_stay_within_budget_and_memory(url, tmp_path, monkeypatch,
                                                                  capsys):
    """Large image, top-5, Guided, every method, under a 300 MB budget (each run reserves its
    worst-case bound, ~132 MB with the raw float32 maps, before it is written); refused
    requests in between."""
    import gradio as gr

    rng = np.random.default_rng(3)
    photo = Image.open(CAT).convert("RGB").resize((2000, 2000))
    noisy = np.asarray(photo, np.int16) + rng.integers(-24, 24, (2000, 2000, 3))
    jpeg = encode(Image.fromarray(noisy.clip(0, 255).astype(np.uint8)), "JPEG", quality=92)
    monkeypatch.setattr(budget.STORE, "budget", SOAK_BUDGET)
    cache = Path(gr.utils.get_upload_folder())
    cache_before = budget.folder_bytes(cache)
    image = file_data(upload(url, jpeg, "large.jpg"))
    worst = request(image, methods=ALL_METHODS, top_k=5, guided=True)
    bad = [request(image, top_k="5"), request({"url": data_url(big_png(12))}), worst[:5]]
    rss, used, start = [], [], time.perf_counter()
    for i in range(SOAK_REQUESTS):
        if time.perf_counter() - start > SOAK_SECONDS:
            break
        kind, out = call_with_files(call, url, worst)
        assert kind == "complete" and len(out[0]) == 75, (kind, str(out)[:300])
        run_bytes = budget.folder_bytes(Path(out[5]["path"]).parent)
        assert run_bytes <= 10**9 / 12, run_bytes  # 12 such requests fit the default 1 GB
        assert_message(*call(url, bad[i % len(bad)]))  # refused, in between
        used.append(budget.STORE.used())
        assert used[-1] <= SOAK_BUDGET, used
        assert budget.folder_bytes(cache) - cache_before <= len(jpeg) + 2**20  # the upload
        gc.collect()
        rss.append(_rss_mib())
    with capsys.disabled():
        print(f"\nsoak: {len(used)} worst-case requests in {time.perf_counter() - start:.0f} s, "
              f"{run_bytes / 1e6:.1f} MB each, "
              f"run folders {max(used) / 1e6:.1f} MB at most (budget {SOAK_BUDGET / 1e6:.0f} "
              f"MB), RSS {rss[0]:.0f} -> {rss[-1]:.0f} MiB")
    assert len(used) >= 3, "too few requests in the time bound to say anything"
    assert rss[-1] <= rss[1] * 1.10 + 50, rss
