"""The web app, launched in-process on a free port and called through ``gradio_client`` like any
remote client: every named endpoint, the error paths, the limits, and the client script."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from app_server import ROOT, explain_with_files, running_app
from PIL import Image

from xai.render import overlay

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

CAT = str(ROOT / "examples" / "cat.png")
OFFERED = ["efficientnet_lite0", "densenet121", "resnet152", "inception_v3", "resnet50",
           "convnext_tiny", "vit_base_patch16_224"]
CAPTION = re.compile(r"^(Grad-CAM|Grad-CAM\+\+|Eigen-CAM|XGrad-CAM) · (first|middle|last) · "
                     r"[\w.]+ · \d+×\d+×\d+ · [\w ]+ \d+%$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


@pytest.fixture(scope="module")
def url() -> str:
    return running_app()


@pytest.fixture(scope="module")
def client(url: str, tmp_path_factory) -> Client:
    return Client(url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("client-downloads")))


@pytest.fixture(scope="module")
def cat_explained(client: Client):
    """One explain call with the defaults (bundled model, four methods, top-1)."""
    return explain_with_files(client, handle_file(CAT), "efficientnet_lite0", "stages",
                              ["gradcam", "gradcam++", "eigencam", "xgradcam"], "top-1", 1,
                              False, "crop")


def test_named_endpoints_and_argument_names(client: Client):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/explain", "/files", "/predict", "/layers", "/models", "/embeddings",
            "/compare", "/concepts"} == set(info)
    names = {ep: [p["parameter_name"] for p in info[ep]["parameters"]] for ep in info}
    assert names["/explain"] == ["image", "model", "mode", "methods", "target", "top_k",
                                 "guided", "fit", "opacity", "colormap", "layer_row", "layer"]
    assert names["/predict"] == ["image", "model", "fit"]
    assert names["/layers"] == ["model", "mode"]
    assert names["/compare"] == ["image", "models", "mode", "method", "target", "fit"]
    assert names["/models"] == []
    assert len(info["/explain"]["returns"]) == 7
    # the target is any text (a class of the model), not the choices of the moment
    target = next(p for p in info["/explain"]["parameters"] if p["parameter_name"] == "target")
    assert target["python_type"]["type"] == "str"
    # every output is named by its label (none is value_N)
    labels = [r["label"] for ep in info.values() for r in ep["returns"]]
    assert not [x for x in labels if re.fullmatch(r"value_\d+", x)], labels


def test_models_endpoint(client: Client):
    assert client.predict(api_name="/models") == OFFERED


def test_predict_endpoint(client: Client):
    top5 = client.predict(handle_file(CAT), "efficientnet_lite0", api_name="/predict")
    labels = [c["label"] for c in top5["confidences"]]
    probs = [c["confidence"] for c in top5["confidences"]]
    assert len(labels) == 5 and "tabby" in labels[:2] and top5["label"] == labels[0]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_layers_endpoint(client: Client):
    stages = client.predict("efficientnet_lite0", "stages", api_name="/layers")
    assert stages["headers"][:5] == ["depth", "module", "kind", "position",
                                     "feature map (C×H×W)"]
    rows = stages["data"]
    assert [r[0] for r in rows] == ["first", "middle", "last"]
    assert rows[-1][1] == "bn2" and rows[-1][4] == "1280×7×7" and rows[-1][3] == "stage 5/5"
    convs = client.predict("efficientnet_lite0", "convs", api_name="/layers")["data"]
    assert [r[3].split("/")[0] for r in convs] == ["conv 1", "conv 25", "conv 49"]
    assert convs[0][2] == "Conv2d" and convs[-1][1] == "conv_head"
    # offline, a model without local weights still shows its layers (architecture only)
    resnet = client.predict("resnet50", "stages", api_name="/layers")["data"]
    assert resnet[-1][1] == "layer4" and resnet[-1][4] == "2048×7×7"


def test_explain_returns_twelve_captioned_panels_and_a_zip_of_maps(cat_explained):
    gallery, top5, table, manifest, sheet, archive, raw = cat_explained
    assert len(gallery) == 12
    captions = [item["caption"] for item in gallery]
    assert all(CAPTION.match(c) for c in captions), captions
    # rows are layers, columns are methods
    assert [c.split(" · ")[1] for c in captions] == ["first"] * 4 + ["middle"] * 4 + ["last"] * 4
    assert [c.split(" · ")[0] for c in captions[:4]] == ["Grad-CAM", "Grad-CAM++", "Eigen-CAM",
                                                        "XGrad-CAM"]
    assert captions[-1].startswith("XGrad-CAM · last · bn2 · 1280×7×7 · ")
    target = manifest["targets"][0]
    assert all(c.endswith(f" · {target['label']} {target['probability']:.0%}") for c in captions)
    pictures = []
    for item in gallery:
        data = Path(item["image"]).read_bytes()
        assert data.startswith(JPEG_MAGIC)  # previews: JPEG at display size
        pictures.append(data)
    # Grad-CAM and Grad-CAM++ differ at every depth (their files once collided)
    assert all(pictures[i] != pictures[i + 1] for i in (0, 4, 8))
    assert len(set(pictures[:8])) == 8
    assert "tabby" in [c["label"] for c in top5["confidences"]]
    assert [r[0] for r in table["data"]] == ["first", "middle", "last"]
    assert manifest["model"] == "efficientnet_lite0" and manifest["targets"][0]["label"] in (
        "tabby", "tiger cat")
    assert set(manifest["layers"]) == {"first", "middle", "last"}
    with Image.open(sheet) as img:
        assert img.format == "JPEG" and img.width > 1000
    with zipfile.ZipFile(archive) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        listed = json.loads(zf.read("manifest.json"))
        assert infos["manifest.json"].compress_type == zipfile.ZIP_DEFLATED
        assert listed["app"]["model"] == "efficientnet_lite0"
        maps = [o["map"] for o in listed["files"]["overlays"]]
        npys = [f for o in listed["files"]["overlays"] for f in o["raw"].values()]
        assert len(set(maps)) == 12 and len(set(npys)) == 24
        assert set(maps) | set(npys) | {"manifest.json", "image.png"} == set(infos)
        image = np.asarray(Image.open(io.BytesIO(zf.read("image.png"))))
        assert list(image.shape[1::-1]) == manifest["image_size"]
        # every panel is the image blended with its map: the ZIP holds no picture twice
        recipe = listed["files"]["overlay"]
        entries = listed["files"]["overlays"]

        def error(panel: int, entry: dict) -> float:
            """Mean difference between a preview and its map's overlay through the same JPEG
            encoder (maps are rounded to 1/255)."""
            cam = np.asarray(Image.open(io.BytesIO(zf.read(entry["map"])))) / 255.0
            assert cam.shape == image.shape[:2] and cam.min() == 0 and cam.max() == 1
            drawn = io.BytesIO()
            Image.fromarray(overlay(image, cam, recipe["alpha"], recipe["colormap"])).save(
                drawn, "JPEG", quality=90)
            drawn = np.asarray(Image.open(drawn), dtype=np.int16)
            preview = np.asarray(Image.open(gallery[panel]["image"]), dtype=np.int16)
            return float(np.abs(drawn - preview).mean())

        for i in (0, 5, 11):  # every panel is the image blended with its map
            assert error(i, entries[i]) < 3, entries[i]
        assert error(0, entries[11]) > 10  # another panel's map does not fit


def test_gallery_comes_first_and_the_files_are_whole_when_offered(url: str, tmp_path):
    """/explain answers with the gallery; the sheet, the ZIP and the raw maps are written in
    the background, and /files, asked at once, waits for them and gives them whole (each is
    written under another name, then renamed)."""
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    first = client.predict(handle_file(CAT), "efficientnet_lite0", "stages",
                           ["gradcam", "eigencam"], "top-1", 2, True, "crop", api_name="/explain")
    assert len(first[0]) == 18 and first[4] is None and first[5] is None  # 2 x 3 x 3 panels
    assert first[6] is None and first[3]["run"]
    final = client.predict(first[3], api_name="/files")  # right after the answer
    assert len(final[2]) == 12  # feature-map maps (Guided has none)
    sheet, archive = Path(final[0]["path"]), Path(final[1]["path"])
    zipped = httpx.get(final[1]["url"], timeout=30).content
    assert zipped == archive.read_bytes()
    with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
        assert zf.testzip() is None
        listed = json.loads(zf.read("manifest.json"))
        assert len(zf.namelist()) == 2 + len(listed["files"]["overlays"]) + 30 == 2 + 18 + 30
        # raw maps: 18 at image size, 12 at feature-map size (Guided Grad-CAM has none)
    with Image.open(sheet) as img:
        img.load()
    assert not list(sheet.parent.glob("*.part"))


def test_bad_inputs_give_one_clear_error_and_the_app_keeps_serving(client: Client, tmp_path):
    with pytest.raises(AppError, match="not offered here"):
        client.predict(handle_file(CAT), "no_such_model", api_name="/explain")
    with pytest.raises(AppError, match="not offered here"):
        client.predict("no_such_model", "stages", api_name="/layers")
    with pytest.raises(AppError, match="could not be loaded"):  # offline: no resnet50 weights
        client.predict(handle_file(CAT), "resnet50", api_name="/predict")
    with pytest.raises(AppError, match="at least one method"):
        client.predict(handle_file(CAT), "efficientnet_lite0", "stages", [], api_name="/explain")
    with pytest.raises(AppError, match="no class named"):
        client.predict(handle_file(CAT), "efficientnet_lite0", "stages", ["gradcam"], "zebra!",
                       api_name="/explain")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(AppError, match="not a readable image"):
        client.predict(handle_file(str(text)), "efficientnet_lite0", api_name="/predict")
    top5 = client.predict(handle_file(CAT), "efficientnet_lite0", api_name="/predict")
    assert "tabby" in [c["label"] for c in top5["confidences"]]


def test_limits_no_monitoring_and_upload_size(url: str, tmp_path):
    for path in ("monitoring", "monitoring/summary"):
        assert httpx.get(url + path).status_code in (403, 404)
    big = tmp_path / "big.png"
    big.write_bytes(PNG_MAGIC + b"\0" * (11 * 2**20))
    with big.open("rb") as fh:
        response = httpx.post(url + "gradio_api/upload", files={"files": ("big.png", fh)})
    assert response.status_code == 413


def test_app_config_inputs_queue_and_examples(url: str):
    config = httpx.get(url + "config").json()
    by_id = {c["id"]: c for c in config["components"]}
    image = next(c for c in by_id.values() if c.get("props", {}).get("elem_id") == "xai-image")
    assert set(image["props"]["sources"]) == {"upload", "clipboard", "webcam"}
    model = next(c for c in by_id.values() if c.get("props", {}).get("elem_id") == "xai-model")
    assert [v for _, v in model["props"]["choices"]] == OFFERED
    assert model["props"]["value"] == "efficientnet_lite0"
    assert config["max_file_size"] == 10 * 2**20
    dataset = next(c for c in by_id.values() if c["type"] == "dataset")
    assert len(dataset["props"]["samples"]) == 4
    tabs = [c["props"].get("label") for c in by_id.values() if c["type"] == "tabitem"]
    assert "Embeddings & faithfulness" in tabs and "Gallery" in tabs


def test_client_script_saves_overlays(url: str, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("xai_client", ROOT / "examples" / "client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out"
    assert module.main([CAT, "--app", url, "--methods", "gradcam", "eigencam", "--mode",
                        "convs", "--out", str(out)]) == 0
    saved = sorted(p.name for p in out.glob("[0-9][0-9]_*.jpg"))
    assert len(saved) == 6 and saved[0].startswith("01_grad-cam-first-conv-stem")
    assert (out / "manifest.json").is_file() and list(out.glob("*.zip"))
    printed = capsys.readouterr().out
    assert "tabby" in printed and "conv 49/49" in printed


# --- the app's non-UI logic, without a server ----------------------------------------------

def test_model_cache_is_bounded_lru_and_loads_once():
    import threading

    from xai_app.service import ModelCache

    loads: list[str] = []
    gate = threading.Event()

    def loader(name: str):
        gate.wait(5)
        loads.append(name)
        return object()

    cache = ModelCache(size=2, loader=loader)
    threads = [threading.Thread(target=cache.get, args=("a",)) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert loads == ["a"]  # four concurrent requests, one load
    first = cache.get("a")
    cache.get("b")
    assert cache.get("a") is first  # "a" is now the most recent
    cache.get("c")  # drops "b", the least recently used
    assert cache.names() == ["a", "c"] and "b" not in cache and loads == ["a", "b", "c"]


def test_targets_labels_and_model_policy(monkeypatch):
    from xai.engine import Prediction
    from xai.errors import TargetError, UnknownModelError
    from xai_app import service

    assert service.parse_targets("top-1", 1) == (None, None)
    assert service.parse_targets("tabby", None) == ("tabby", None)
    assert service.parse_targets("crane (class 517)", 1) == (517, None)
    assert service.parse_targets("tabby", 3.0) == (None, 3)  # top-k > 1 wins
    for bad in (0, 2.5, 6, "many", "3", True, float("nan"), float("inf"), [2], 10**5000):
        with pytest.raises(TargetError, match="top_k must be a whole number from 1 to 5"):
            service.parse_targets("top-1", bad)
    scores = service.label_scores([Prediction(517, "crane", 0.5), Prediction(281, "tabby", 0.2)],
                                  ["crane", "tabby", "crane"])
    assert scores == {"crane (class 517)": 0.5, "tabby": 0.2}
    monkeypatch.delenv("XAI_ALLOW_ANY_MODEL", raising=False)
    assert service.check_model(" resnet50 ") == "resnet50"
    with pytest.raises(UnknownModelError, match="not offered"):
        service.check_model("resnet18")
    monkeypatch.setenv("XAI_ALLOW_ANY_MODEL", "1")
    assert service.check_model("resnet18") == "resnet18"


def test_embeddings_endpoint_scores_every_panel(client: Client):
    figure, channels, table, verdicts, badges = client.predict(
        handle_file(CAT), "efficientnet_lite0", "stages",
        ["gradcam", "gradcam++", "eigencam", "xgradcam"], "top-1", "crop", 4, True,
        api_name="/embeddings")
    with Image.open(figure) as img:
        assert img.format == "PNG" and img.width > img.height  # input + one map per depth
    assert len(channels) == 3 and channels[0]["caption"].startswith("first: blocks.0")
    rows = table["data"]
    panels = [r for r in rows if not r[0].startswith("baseline")]
    assert len(panels) == 12 and sum("★" in r[0] for r in panels) <= 1
    assert [r[0] for r in rows[12:]] == ["baseline: random", "baseline: smooth random",
                                         "baseline: edges"]
    assert all(r[1] and r[7] for r in panels)  # a badge and the reasons on every panel
    assert len(badges) == 12 and all(" · " in b["caption"] for b in badges)
    assert "Which map to believe for tabby" in verdicts
    assert "gradcam" in verdicts and ("passes" in verdicts or "fails" in verdicts)
    with pytest.raises(AppError, match="steps must be a whole number from 4 to"):
        client.predict(handle_file(CAT), "efficientnet_lite0", "stages", ["gradcam"], "top-1",
                       "crop", 1000, False, api_name="/embeddings")


def test_warm_up_loads_and_traces_the_default_model():
    from xai_app import service

    service.warm_up()
    model = service.CACHE.peek(service.OFFERED_MODELS[0])
    assert model is not None and model.layer_trace is not None


def test_sanity_text_names_unmeasured_correlations_instead_of_failing():
    from xai.sanity import SanityReport
    from xai_app.insights import sanity_markdown

    verdicts = {
        "gradcam": {"verdict": "passes", "rho_layer": 0.123, "rho_head": -0.04, "note": "n"},
        "eigencam": {"verdict": "not run", "rho_layer": None, "rho_head": None, "note": "n"},
    }
    report = SanityReport("m", {}, ["head"], {"last": 0}, {}, verdicts, 0.5, 0.1)
    text = sanity_markdown(report)
    assert ("**gradcam: passes** — worst |ρ| own stage 0.12 (no panel), mean ρ head only -0.04"
            in text)
    assert "**eigencam: not run** — worst |ρ| own stage — (no panel), mean ρ head only —" in text
    verdicts["gradcam++"] = {"verdict": "fails", "rho_layer": 0.62, "rho_head": 0.9, "note": "n",
                             "panels": {"middle": {"rho": 0.12, "verdict": "passes"},
                                        "last": {"rho": 0.62, "verdict": "fails"}}}
    text = sanity_markdown(report)
    assert ("**gradcam++: fails** — worst |ρ| own stage 0.62 (middle 0.12 passes; last 0.62 "
            "fails)" in text)


def test_files_of_an_unknown_run_get_one_clear_message(client: Client):
    for manifest, part in (({"run": "run-nothing-here"}, "not on this server"),
                           ({"run": "../../etc"}, "not a run name"),
                           ({}, "manifest")):
        with pytest.raises(AppError) as err:
            client.predict(manifest, api_name="/files")
        assert part in str(err.value) and "Traceback" not in str(err.value)
