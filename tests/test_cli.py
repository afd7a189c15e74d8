"""The command line, end to end: files, manifest, layers, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT
from PIL import Image


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xai", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"})


def test_explain_writes_gallery_overlays_and_manifest(tmp_path, cat_path, coffee_path):
    out = tmp_path / "out"
    res = _run("explain", str(cat_path), str(coffee_path), "--top-k", "2", "--guided",
               "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "tabby" in res.stdout and "espresso" in res.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "efficientnet_lite0"
    assert len(manifest["images"]) == 2
    cat = manifest["images"][0]
    assert cat["predictions"][0]["label"] in {"tabby", "tiger cat"}
    assert set(cat["layers"]) == {"first", "middle", "last"}
    assert cat["layers"]["last"]["name"] == "bn2"
    # 2 targets x 3 depths x (4 methods + guided)
    assert len(cat["files"]["overlays"]) == 30
    assert len({e["file"] for e in cat["files"]["overlays"]}) == 30  # gradcam++ != gradcam
    for entry in cat["files"]["overlays"]:
        assert (out / entry["file"]).is_file()
    gallery = Image.open(out / cat["files"]["gallery"])
    assert gallery.width > 1000 and gallery.height > 1000
    assert cat["timings"]["total"] > 0 and cat["passes"]["backward"] == 4


def test_convs_mode_and_explicit_depths(tmp_path, cat_path):
    res = _run("explain", str(cat_path), "--mode", "convs", "--depths", "first", "conv:25",
               "--methods", "gradcam", "eigencam", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    layers = json.loads((tmp_path / "manifest.json").read_text())["images"][0]["layers"]
    assert layers["first"]["position"] == "conv 1/49"
    assert layers["conv:25"]["name"] == "blocks.4.0.conv_pw"


def test_layers_command_prints_counts():
    res = _run("layers", "resnet152", "--random-weights")
    assert res.returncode == 0, res.stderr
    assert "155 conv layers" in res.stdout
    assert "last  layer4 (Sequential), stage 4/4" in res.stdout  # the stem is not a stage


def test_errors_are_one_line_and_non_zero(tmp_path, cat_path):
    bad_file = tmp_path / "notes.txt"
    bad_file.write_text("not an image")
    cases = [
        ("explain", str(cat_path), "--model", "no_such_model", "--out", str(tmp_path)),
        ("explain", str(bad_file), "--out", str(tmp_path)),
        ("explain", str(tmp_path / "missing.png"), "--out", str(tmp_path)),
        ("explain", str(cat_path), "--depths", "conv:0", "--out", str(tmp_path)),
        ("explain", str(cat_path), "--methods", "saliency", "--out", str(tmp_path)),
        ("explain", str(cat_path), "--target", "unicorn", "--out", str(tmp_path)),
    ]
    for args in cases:
        res = _run(*args)
        assert res.returncode == 2, args
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, res.stderr)
        assert "Traceback" not in res.stderr


def test_faithfulness_and_embeddings_flags(tmp_path, cat_path, coffee_path):
    res = _run("explain", str(cat_path), str(coffee_path), "--faithfulness", "--steps", "4",
               "--embeddings", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (tmp_path / manifest["embeddings_2d"]).is_file()
    cat = manifest["images"][0]
    table = cat["faithfulness"][0]
    assert len(table["rows"]) == 12 and sum(r["best"] for r in table["rows"]) == 1
    assert (tmp_path / "cat_faithfulness.md").is_file()
    assert (tmp_path / cat["embeddings"]["maps"]).is_file()
    assert set(cat["embeddings"]["channels"]) == {"first", "middle", "last"}


def test_verdicts_flag_writes_one_verdict_per_panel_with_per_panel_sanity(tmp_path, cat_path):
    res = _run("explain", str(cat_path), "--methods", "gradcam", "eigencam", "--depths", "last",
               "--verdicts", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "verdicts (tabby):" in res.stdout and "sanity: gradcam" in res.stdout
    entry = json.loads((tmp_path / "manifest.json").read_text())["images"][0]
    v = entry["verdicts"][0]
    assert [(p["method"], p["depth"]) for p in v["panels"]] == [("gradcam", "last"),
                                                                ("eigencam", "last")]
    eigen = v["panels"][1]
    assert eigen["class_sensitive"] is False and not eigen["best"]  # class-agnostic
    assert all(p["sanity_rho"] is not None for p in v["panels"])  # the panel's own ρ
    assert set(entry["sanity"]["verdicts"]["gradcam"]["panels"]) == {"last"}
    assert "| baseline: edges |" in (tmp_path / "cat_verdicts.md").read_text()
