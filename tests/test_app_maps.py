"""The app's raw maps, overlay style, any-layer rows, top-5 fit, target suggestions, the
Compare endpoint and the client script's errors, through ``gradio_client`` like any client;
and the words the app shows (model readiness, targets), without a server."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from app_server import ROOT, explain_with_files, running_app
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

CAT = str(ROOT / "examples" / "cat.png")
BOTH = str(ROOT / "examples" / "cat_and_coffee.png")
METHODS = ["gradcam", "eigencam"]


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Client:
    return Client(running_app(), verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("client-downloads")))


def explain(client: Client, image: str = CAT, **kw):
    args = dict(mode="stages", methods=METHODS, target="top-1", top_k=1, guided=False,
                fit="crop", opacity=0.5, colormap="jet", layer_row="none", layer="")
    args.update(kw)
    return explain_with_files(client, handle_file(image), "efficientnet_lite0", *args.values())


def test_raw_maps_reach_the_client_as_float32_npy(client: Client):
    gallery, _, table, manifest, _, archive, raw = explain(client)
    files = {p.split("/")[-1]: np.load(p) for p in raw}  # the feature-map maps, as files
    entries = manifest["files"]["overlays"]
    assert len(raw) == len(entries) == 6
    with zipfile.ZipFile(archive) as zf:
        listed = json.loads(zf.read("manifest.json"))
        image = np.asarray(Image.open(io.BytesIO(zf.read("image.png"))))
        for entry in listed["files"]["overlays"]:
            full = np.load(io.BytesIO(zf.read(entry["raw"]["image_size"])))
            fmap = np.load(io.BytesIO(zf.read(entry["raw"]["feature_map"])))
            assert full.dtype == fmap.dtype == np.float32
            assert full.shape == image.shape[:2]
            assert list(fmap.shape) == manifest["layers"][entry["depth"]]["shape"][-2:]
            assert np.array_equal(files[entry["raw"]["feature_map"].split("/")[-1]], fmap)
            png = np.asarray(Image.open(io.BytesIO(zf.read(entry["map"]))))
            assert np.abs(png.astype(float) - full * 255).max() <= 0.51  # the PNG is rounded
    assert "float32" in listed["files"]["raw"]["format"]


def test_opacity_and_colormap_style_the_overlays(client: Client):
    plain = explain(client, opacity=0.0)
    styled = explain(client, opacity=0.8, colormap="viridis")
    assert styled[3]["files"]["overlay"] == {"colormap": "viridis", "alpha": 0.8,
                                             "maps": "8-bit, map = value/255"}
    with zipfile.ZipFile(plain[5]) as zf:
        image = np.asarray(Image.open(io.BytesIO(zf.read("image.png"))), dtype=float)
    first = np.asarray(Image.open(plain[0][0]["image"]), dtype=float)
    assert np.abs(first - image).mean() < 3  # opacity 0: the image itself (JPEG)
    green = np.asarray(Image.open(styled[0][-1]["image"]), dtype=float)[..., 1].mean()
    assert abs(green - image[..., 1].mean()) > 10
    with pytest.raises(AppError, match="colormap must be one of"):
        explain(client, colormap="rainbow-ish")


def test_any_layer_as_a_row(client: Client):
    gallery, _, table, manifest, *_ = explain(client, layer_row="extra", layer="conv:5")
    assert [r[0] for r in table["data"]] == ["first", "middle", "last", "conv:5"]
    assert len(gallery) == 8 and gallery[-1]["caption"].startswith("Eigen-CAM · conv:5 · ")
    gallery, _, table, *_ = explain(client, layer_row="middle", layer="blocks.3")
    assert [r[0] for r in table["data"]] == ["first", "blocks.3", "last"]
    assert table["data"][1][1] == "blocks.3"
    with pytest.raises(AppError, match="nor a module of"):
        explain(client, layer_row="extra", layer="no.such.module")


def test_top5_uses_the_fit_on_screen(client: Client):
    crop = client.predict(handle_file(BOTH), "efficientnet_lite0", "crop", api_name="/predict")
    full = client.predict(handle_file(BOTH), "efficientnet_lite0", "full", api_name="/predict")
    assert crop["confidences"] != full["confidences"]
    manifest = explain(client, BOTH, fit="full")[3]  # Explain sees the same top-5
    assert [p["label"] for p in manifest["predictions"][:5]] == [
        c["label"] for c in full["confidences"]]


def test_a_mistyped_target_gets_a_suggestion(client: Client):
    with pytest.raises(AppError, match="Did you mean: tabby"):
        explain(client, target="tabyb")


def test_compare_endpoint_side_by_side(client: Client, random_weight_models):
    models = ["efficientnet_lite0", *random_weight_models]
    sheet, table = client.predict(handle_file(CAT), models, "stages", "gradcam", "top-1", "crop",
                                  api_name="/compare")
    rows = table["data"]
    assert [r[0] for r in rows] == models
    assert rows[0][1] == "tabby" and rows[2][5].startswith("Mixed_7c")  # each its own layers
    with Image.open(sheet) as img:
        assert img.width > 3 * 260 and img.height > 3 * 260
    with pytest.raises(AppError, match="2 or 3"):
        client.predict(handle_file(CAT), models[:1], "stages", "gradcam", "top-1", "crop",
                       api_name="/compare")
    with pytest.raises(AppError, match="ResNet152 needs to download its weights"):
        client.predict(handle_file(CAT), ["efficientnet_lite0", "resnet152"], "stages",
                       "gradcam", "top-1", "crop", api_name="/compare")


def test_client_script_errors_are_one_line_and_status_2(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("xai_client", ROOT / "examples" / "client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([CAT, "--app", "http://127.0.0.1:9", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot use the app at") and "\n" not in err
    assert module.main([CAT, "--app", running_app(), "--target", "tabyb",
                        "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the app refused") and "tabby" in err and "\n" not in err


# --- the words, without a server -----------------------------------------------------------

def test_target_choices_follow_the_image():
    from xai_app.choices import did_you_mean, target_choices

    labels = ["tabby", "tiger cat", "espresso", "cup", "crane", "crane"]
    scores = {"espresso": 0.8, "cup": 0.1}
    options, value = target_choices(scores, labels, "tabby", keep="top5")
    assert value == "top-1"  # a new image: tabby is not in its top-5
    assert [v for _, v in options][:3] == ["top-1", "espresso", "cup"]
    assert options[1][0] == "espresso · 80%"
    assert {"crane (class 4)", "crane (class 5)", "tabby"} <= {v for _, v in options}
    assert target_choices(scores, labels, "tabby", keep="any")[1] == "tabby"
    assert target_choices(scores, labels, "espresso", keep="top5")[1] == "espresso"
    # the list first sent to the page: the top-5, and a kept class of the model
    short, value = target_choices(scores, labels, "tabby", keep="any", every=False)
    assert value == "tabby" and [v for _, v in short] == ["top-1", "espresso", "cup", "tabby"]
    assert [v for _, v in target_choices(scores, labels, "tabby", "top5", every=False)[0]] == [
        "top-1", "espresso", "cup"]
    assert "Did you mean: espresso" in did_you_mean("expresso", labels)
    assert did_you_mean("tabby", labels) == did_you_mean("top-1", labels) == ""


def test_model_words_and_rows():
    import xai
    from xai_app.choices import load_failure, model_choices, rows

    titles = dict((v, t) for t, v in model_choices())
    assert titles["efficientnet_lite0"].startswith("EfficientNet-Lite0 · ready")
    error = xai.WeightsUnavailableError("pretrained weights ... or pass pretrained=False")
    sentence = load_failure("resnet152", "efficientnet_lite0", error)
    assert sentence.startswith("ResNet152 needs to download its weights")
    assert sentence.endswith("went back to EfficientNet-Lite0.") and "pretrained" not in sentence
    assert rows("none", "blocks.3") == ("first", "middle", "last")
    assert rows("extra", "conv:5") == ("first", "middle", "last", "conv:5")
    assert rows("last", "blocks.5") == ("first", "middle", "blocks.5")
    with pytest.raises(xai.LayerError):
        rows("sideways", "blocks.5")


def test_layer_choices_come_from_the_layer_table():
    from xai_app import service
    from xai_app.choices import layer_choices

    service.CACHE.get("efficientnet_lite0")
    names = layer_choices("efficientnet_lite0", "stages")
    stages = [row[1] for row in service.layer_rows(service.resolved_layers(
        "efficientnet_lite0", "stages"))]
    assert set(stages) <= set(names) and "conv:1" in names and "conv:49" in names
    assert layer_choices("not_loaded_model", "stages") == []


def test_a_model_that_cannot_load_goes_back_in_one_sentence(recwarn):
    from xai_app import events

    typed = events.switch_model("resnet_typo", "efficientnet_lite0")
    failed = events.switch_model("resnet152", "efficientnet_lite0")  # offline: no weights
    for answer in (typed, failed):
        dropdown, last_good, *outputs = answer
        assert dropdown.value == "efficientnet_lite0" and last_good == "efficientnet_lite0"
        assert outputs[0] == [] and all(o in ({}, None) for o in outputs[1:])  # cleared
    works = events.switch_model("efficientnet_lite0", "efficientnet_lite0")
    assert works[1] == "efficientnet_lite0"
