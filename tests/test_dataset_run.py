"""A dataset end to end on the bundled model: batched rows, pointing on known boxes, logged bad
files, resume without redoing an image, the report, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from annotated import make_set, write_voc
from conftest import ROOT

from xai.batch import RunOptions
from xai.dataset_run import run_local
from xai.datasets import DatasetError, read_samples
from xai.manifest import MANIFEST_DIR, part_files, read_manifest
from xai.report_html import write_report

N = 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("set")
    records = make_set(root, N)
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    with open(root / "list.jsonl", "a") as fh:
        fh.write(json.dumps({"path": "broken.png", "label": "tabby"}) + "\n")
    return root, records


@pytest.fixture(scope="module")
def finished(dataset, bundled, tmp_path_factory, one_torch_thread):
    """A run killed after its first part (simulated: the first 3 images), then resumed."""
    root, _ = dataset
    out = tmp_path_factory.mktemp("run")
    samples = read_samples([str(root / "list.jsonl")])
    opts = RunOptions(out=str(out), overlays=False)
    first = run_local(samples[:3], opts, model=bundled, batch_size=2, workers=0, chunk=2)
    (out / MANIFEST_DIR / ".part-99999-dead.parquet.tmp").write_bytes(b"half a part")
    second = run_local(samples, opts, model=bundled, batch_size=4, workers=1, chunk=2)
    return out, samples, first, second


def test_resume_does_no_image_twice(finished):
    out, samples, first, second = finished
    assert (first.explained, second.already_done, second.explained) == (3, 3, N + 1 - 3)
    table = read_manifest(out)
    keys = Counter(zip(table.column("image_id").to_pylist(), table.column("rank").to_pylist()))
    assert max(keys.values()) == 1
    assert {i for i, _ in keys} == {s.id for s in samples}
    assert len(part_files(out / MANIFEST_DIR)) >= 3  # chunks of 2 images
    again = run_local(samples, RunOptions(out=str(out), overlays=False), workers=0)
    assert (again.explained, again.already_done) == (0, N + 1)


def test_rows_hold_targets_layers_and_pointing(finished, dataset):
    out, _, _, _ = finished
    _, records = dataset
    rows = read_manifest(out).to_pylist()
    bad = [r for r in rows if r["status"] == "error"]
    assert len(bad) == 1 and bad[0]["image_id"].endswith("broken.png")
    assert "not a readable image" in bad[0]["error"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == sum(len(r["boxes"]) for r in records)  # one row per annotated class
    assert {r["target_label"] for r in ok} == {"tabby", "espresso"}
    assert all(r["target_source"] == "annotation" and r["mask_label"] == r["target_label"]
               for r in ok)
    assert all(r["layer|last"] == "bn2" and len(r["top5"]) == 5 for r in ok)
    assert all(len(r["map"]) == 24 * 24 for r in ok)
    hits = np.mean([r["gradcam|last|hit"] for r in ok])
    assert hits >= 0.8, hits  # the bundled model finds the cat and the cup
    assert np.mean([r["gradcam|last|energy"] for r in ok]) > 0.35  # objects: ~14 % or 28 %
    two = [r for r in ok if len(r["gt_labels"]) == 2]
    assert two and all(r["difficult"] for r in two)  # 14 % of the image, another class present
    for r in ok:  # the peak is inside the image
        assert 0 <= r["gradcam|first|peak_x"] < r["width"]
        assert 0 <= r["gradcam|first|peak_y"] < r["height"]


def test_other_settings_are_refused_on_resume(finished, bundled):
    out, samples, _, _ = finished
    with pytest.raises(DatasetError, match="other settings .*methods"):
        run_local(samples, RunOptions(out=str(out), methods=("gradcam",)), model=bundled)


def test_report_numbers_and_html(finished):
    out, _, _, _ = finished
    html = write_report(out).read_text()
    summary = json.loads((out / "report.json").read_text())
    rows = [r for r in read_manifest(out).to_pylist() if r["status"] == "ok"]
    panel = next(p for p in summary["panels"]
                 if p["method"] == "gradcam++" and p["depth"] == "middle")
    per_class = {c: np.mean([r["gradcam++|middle|hit"] for r in rows if r["mask_label"] == c])
                 for c in ("tabby", "espresso")}
    assert panel["pointing"]["mean"] == pytest.approx(np.mean(list(per_class.values())))
    lo, hi = panel["energy"]["ci"]
    assert lo <= panel["energy"]["mean"] <= hi
    assert summary["errors"] == 1 and summary["images"] == N + 1
    every = {r["image_id"]: r["gt_labels"] for r in read_manifest(out).to_pylist()}
    assert summary["class_distribution"]["annotated"]["tabby"] == sum(
        "tabby" in labels for labels in every.values())  # the broken image's label too
    assert html.count("<img") >= 4 and "broken.png" in html


def test_voc_difficult_boxes_are_skipped(dataset, bundled, tmp_path, one_torch_thread):
    root, records = dataset
    voc = write_voc(tmp_path / "VOC", root, records[:2], difficult=frozenset({0}))
    out = tmp_path / "out"
    run_local(read_samples([str(voc)]), RunOptions(out=str(out), overlays=True,
                                                   methods=("gradcam",)),
              model=bundled, workers=0)
    rows = read_manifest(out).to_pylist()
    first = [r for r in rows if r["image_id"].endswith("img000.png")]
    assert first and all(r["pointing_skipped"] and r["gradcam|last|hit"] is None for r in first)
    assert all(r["gradcam|last|hit"] is not None for r in rows if r not in first)
    assert len(list((out / "overlays").glob("*.png"))) == 2


def test_cli_folder_to_report(dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "xai", "explain", str(root / "img00[01].png"), "--out", str(out),
         "--methods", "gradcam", "eigencam", "--no-overlays", "--workers", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin", "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    assert "2 images explained (0 logged as errors)" in res.stdout
    assert (out / "report.html").is_file() and (out / "report.json").is_file()
    assert read_manifest(out).num_rows == 2  # no labels: the top-1 class of each image
    bad = subprocess.run([sys.executable, "-m", "xai", "explain", str(tmp_path / "x.csv"),
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no such file" in bad.stderr


def test_faithfulness_columns_when_asked(dataset, bundled, tmp_path, one_torch_thread):
    root, _ = dataset
    out = tmp_path / "out"
    samples = read_samples([str(root / "img001.png")])
    run_local(samples, RunOptions(out=str(out), overlays=False, methods=("gradcam", "eigencam"),
                                  depths=("last",), faithfulness=True, steps=4),
              model=bundled, workers=0)
    (row,) = read_manifest(out).to_pylist()
    for m in ("gradcam", "eigencam"):
        assert 0 <= row[f"{m}|last|deletion"] <= 1 and 0 <= row[f"{m}|last|insertion"] <= 1
    assert row["gradcam|last|deletion"] != row["eigencam|last|deletion"]
    summary = json.loads((write_report(out).parent / "report.json").read_text())
    assert summary["panels"][0]["insertion"]["mean"] == pytest.approx(
        row["gradcam|last|insertion"], abs=1e-6)


def test_label_map_and_fixed_targets_choose_the_class(bundled):
    from xai.batch import BatchExplainer
    from xai.datasets import Box, Sample

    s = Sample("a", "a.png", ("cat", "mug"), (Box(0, 0, 5, 5, "cat"), Box(5, 5, 9, 9, "mug")))
    ex = BatchExplainer(bundled, RunOptions(label_map={"cat": "tabby", "mug": "504"}))
    assert ex.targets_for(s) == [(281, "cat", "annotation"), (504, "mug", "annotation")]
    plain = BatchExplainer(bundled, RunOptions(top_k=2))
    assert plain.targets_for(s) == [(None, None, "top-k")] * 2  # no class named cat: top-2
    given = BatchExplainer(bundled, RunOptions(targets=("tabby",), label_map={"cat": "281"}))
    assert given.targets_for(s) == [(281, "cat", "given")]
