"""The fused row (LayerCAM fusion, RefineCAM) as gallery panels in the app, the CLI's files and
the manifests; Deep Feature Factorization concepts in the embeddings view (/concepts)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from app_server import ROOT
from PIL import Image

import xai
from xai.cams.fusion import FUSED, fused_map
from xai.export import write_outputs
from xai.render import overlay

CAT = ROOT / "examples" / "cat.png"
FIVE = list(xai.DEFAULT_METHODS) + ["layercam"]


@pytest.fixture(scope="module")
def app_run(tmp_path_factory):
    from xai_app import budget, service
    store = budget.RunStore(tmp_path_factory.mktemp("runs"), budget=10**9)
    return service.explain("efficientnet_lite0", str(CAT), methods=FIVE, store=store)


def test_app_gallery_ends_with_the_fused_panels_from_the_same_maps(app_run):
    r = app_run.result
    assert len(app_run.gallery) == 3 * 5 + 2  # depths x methods, then the fused row
    captions = [c for _, c in app_run.gallery[-2:]]
    assert captions[0].startswith("LayerCAM fusion · fused first + middle + last")
    assert captions[1].startswith("RefineCAM · fused first + middle + last")
    assert r.passes["forward"] == 1 and r.passes["backward"] == 1  # no extra pass
    fused = [o for o in app_run.manifest["files"]["overlays"] if o["depth"] == FUSED]
    assert [o["method"] for o in fused] == ["layercam-fusion", "refinecam"]
    assert all("feature_map" not in o["raw"] for o in fused)  # image size only
    with zipfile.ZipFile(app_run.zip) as zf:
        for o in fused:
            want = fused_map(r, o["method"], o["target"])
            png = np.asarray(Image.open(io.BytesIO(zf.read(o["map"]))))
            assert np.array_equal(png, (want * 255).round().astype(np.uint8))
            raw = np.load(io.BytesIO(zf.read(o["raw"]["image_size"])), allow_pickle=False)
            assert np.array_equal(raw, want)


def test_default_gallery_has_no_fused_row(tmp_path):
    from xai_app import budget, service
    run = service.explain("efficientnet_lite0", str(CAT), store=budget.RunStore(
        tmp_path, budget=10**9))
    assert len(run.gallery) == 12
    assert all(o["depth"] != FUSED for o in run.manifest["files"]["overlays"])


def test_cli_writes_the_fused_panels_and_lists_them(bundled, tmp_path):
    r = xai.explain(bundled, CAT, methods=FIVE)
    entry = write_outputs(r, tmp_path, "cat")
    fused = [o for o in entry["files"]["overlays"] if o["depth"] == FUSED]
    assert [o["method"] for o in fused] == ["layercam-fusion", "refinecam"]
    for o in fused:
        pic = np.asarray(Image.open(tmp_path / o["file"]))
        assert np.array_equal(pic, overlay(r.image, fused_map(r, o["method"], o["target"])))
    json.dumps(entry)  # the manifest entry stays JSON-able
    one = write_outputs(xai.explain(bundled, CAT, methods=FIVE, depths=["last"]), tmp_path,
                        "one")
    assert all(o["depth"] != FUSED for o in one["files"]["overlays"])  # one depth: no fusion


def test_concepts_name_the_objects_and_refuse_bad_input():
    from xai_app import concepts_view
    run = concepts_view.concepts("efficientnet_lite0", str(ROOT / "examples" /
                                                            "cat_and_coffee.png"),
                                 fit="full", depth="last", n_concepts=4)
    rows = concepts_view.concept_rows(run)
    assert [r[0] for r in rows] == [f"concept {j}" for j in (1, 2, 3, 4)]
    tops = " ".join(r[1] for r in rows)
    assert "espresso" in tops and ("cat" in tops or "tabby" in tops)
    assert run.picture.width > 2 * 224 and run.picture.height > 2 * 224  # 2 x 2
    middle = concepts_view.concepts("efficientnet_lite0", str(CAT), depth="middle",
                                    n_concepts=2)
    assert all(r[1] == "no class labels at this depth" for r in concepts_view.concept_rows(
        middle))  # blocks.2 does not feed the classifier
    with pytest.raises(xai.LayerError, match="depth must be one of first, middle, last"):
        concepts_view.concepts("efficientnet_lite0", str(CAT), depth="deepest")
    with pytest.raises(xai.XaiError, match="concepts must be a whole number from 2 to 8"):
        concepts_view.concepts("efficientnet_lite0", str(CAT), n_concepts=50)
    with pytest.raises(xai.ImageError, match="no image"):
        concepts_view.concepts("efficientnet_lite0", None)


def test_concepts_endpoint_for_gradio_client(tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from test_app import running_app
    client = Client(running_app(), verbose=False, analytics_enabled=False,
                    download_files=str(tmp_path))
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in info["/concepts"]["parameters"]] == [
        "image", "model", "mode", "fit", "depth", "concepts"]
    picture, table = client.predict(handle_file(str(CAT)), "efficientnet_lite0", "stages",
                                    "crop", "last", 3, api_name="/concepts")
    with Image.open(picture) as img:
        assert img.format == "PNG" and img.width > 2 * 224
    assert len(table["data"]) == 3 and any("cat" in r[1] or "tabby" in r[1]
                                           for r in table["data"])
    with pytest.raises(AppError, match="depth must be one of first, middle, last"):
        client.predict(handle_file(str(CAT)), "efficientnet_lite0", "stages", "crop", "top",
                       3, api_name="/concepts")
    with pytest.raises(AppError, match="concepts must be a whole number from 2 to 8"):
        client.predict(handle_file(str(CAT)), "efficientnet_lite0", "stages", "crop", "last",
                       0, api_name="/concepts")
