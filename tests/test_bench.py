"""The benchmark: a quick run writes the JSON schema, computes the ratios and counts passes
(one forward and one backward per gallery). No wall-time assertions: the machine is shared."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from bench import report

PHASES = ("a", "b", "c", "d")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "bench.run", "--quick", "--models", "efficientnet_lite0",
           "--growth-requests", "6", "--out", str(out)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def test_quick_run_writes_the_schema(quick):
    results, _ = quick
    assert results["schema"] == 1
    machine = results["machine"]
    assert machine["device"] == "cpu" and machine["cpu_model"]
    assert machine["torch_threads"] >= 1 and machine["grad_cam"] == "1.5.7"
    assert len(results["load_average"]["start"]) == 3
    (entry,) = results["models"]
    assert entry["model"] == "efficientnet_lite0" and entry["input_size"] == [224, 224]
    assert set(entry["layers"]) == {"first", "middle", "last"}
    for phase in PHASES:
        assert entry[phase]["median_s"] > 0, phase
        assert entry[phase]["peak_rss_mib"] > 0, phase
    assert entry["d"]["forward_s"] > 0 and entry["d"]["backward_s"] > 0
    assert {"forward", "backward", "cams", "preprocess"} <= set(entry["a"]["engine_timings"])
    shares = entry["profile"]["share"]
    assert {"forward", "backward", "cams", "preprocess", "other"} <= set(shares)
    assert entry["batch"]["size"] == 2
    assert entry["batch"]["per_image_s"] == pytest.approx(entry["batch"]["median_s"] / 2,
                                                          abs=1e-4)


def test_quick_run_computes_ratios_and_targets(quick):
    results, markdown = quick
    (entry,) = results["models"]
    a, b, c, d = (entry[p]["median_s"] for p in PHASES)
    ratios = entry["ratios"]
    assert ratios["a_over_d"] == pytest.approx(a / d, abs=1e-3)
    assert ratios["a_over_c"] == pytest.approx(a / c, abs=1e-3)
    assert ratios["b_over_a"] == pytest.approx(b / a, abs=1e-3)
    assert ratios["b_over_d"] == pytest.approx(b / d, abs=1e-3)
    per = entry["b"]["per_object"]
    assert set(entry["b"]["per_object_over_d"]) == {k for k, v in per.items() if "median_s" in v}
    assert entry["b"]["per_object_over_d"]["gradcam@last"] == pytest.approx(
        per["gradcam@last"]["median_s"] / d, abs=1e-3)
    assert entry["b"]["repeats"] == 1  # --quick: one run of pytorch-grad-cam
    assert entry["b"]["partial"] and ratios["b_over_a_is_lower_bound"]  # --quick: last layer
    assert set(entry["targets_met"]) == set(report.TARGETS)
    assert entry["targets_met"]["a_over_d"] == (ratios["a_over_d"] <= 1.25)
    assert set(results["summary"]["per_target"]) == set(report.TARGETS) | {
        "memory_growth_within_5pct", "click_to_gallery_300ms",
        "explain_over_predict_engine_1_5", "app_memory_within_5pct"}
    assert "efficientnet_lite0 (224×224)" in markdown and "(a)/(d)" in markdown
    assert results["command"].startswith("python -m bench.run --quick")
    assert f"{ratios['a_over_d']:.2f}" in markdown


def test_quick_run_counts_one_pass_per_target(quick):
    results, _ = quick
    (entry,) = results["models"]
    one = {"forward": 1, "backward": 1}
    assert entry["a"]["passes"] == one  # 12 maps
    assert entry["c"]["passes"] == one and entry["d"]["passes"] == one
    assert entry["top_k"]["passes"] == {"forward": 1, "backward": 3}
    assert entry["batch"]["passes"] == one  # 2 images, one batched pass
    assert entry["eigencam_first"]["request_passes"] == {"forward": 1, "backward": 0}
    # pytorch-grad-cam: one forward per object, one backward per gradient method
    assert entry["b"]["passes"] == {"forward": 4, "backward": 3}
    assert entry["agreement_max_abs_diff"]["gradcam@last"] <= 1e-4
    assert entry["agreement_max_abs_diff"]["eigencam@last"] <= 1e-4  # either sign


def test_quick_run_checks_memory_growth(quick):
    results, _ = quick
    growth = results["memory_growth"]
    assert growth["requests"] == 6 and len(growth["peak_rss_mib"]) == 6
    expected = (growth["peak_after_n_mib"] - growth["peak_after_5_mib"]) \
        / growth["peak_after_5_mib"] * 100
    assert growth["peak_growth_pct"] == pytest.approx(expected, abs=0.01)
    assert isinstance(growth["within_5pct"], bool)


def test_quick_run_measures_the_served_app(quick):
    """bench.run also runs the request benchmark: (e), (f) in the browser, (g) app memory."""
    results, markdown = quick
    (row,) = results["request"]["rows"]
    assert row["model"] == "efficientnet_lite0" and row["image"] == "640x480"
    assert 0 < row["click_to_answer_s"] <= row["click_to_gallery_s"]
    assert row["ratio"] == pytest.approx(row["explain_s"] / (row["predict_s"] + row["engine_s"]))
    memory = results["request"]["memory"]
    assert memory["requests"] == 5 and len(memory["rss_mib"]) == 5
    start = memory["rss_after_warmup_mib"]  # the MiB are rounded to 0.1, the % to 0.01
    assert memory["rss_growth_pct"] == pytest.approx(
        (memory["rss_end_mib"] - start) / start * 100, abs=0.005 + 0.1 / start * 100)
    assert memory["disk_within_budget"] is True  # the budget evicted old runs
    assert isinstance(results["summary"]["per_target"]["click_to_gallery_300ms"], bool)
    assert "(f) click → gallery" in markdown and "App memory: 5 `/explain` requests" in markdown


def test_request_targets_from_numbers():
    rows = [{"model": "efficientnet_lite0", "image": "640x480", "click_to_gallery_s": 0.29,
             "ratio": 1.2}, {"model": "resnet152", "image": "640x480",
                             "click_to_gallery_s": 0.9, "ratio": 1.6}]
    met = report.request_targets({"rows": rows, "memory": {"within_5pct": True}})
    assert met == {"click_to_gallery_300ms": True, "explain_over_predict_engine_1_5": False,
                   "app_memory_within_5pct": True}
    assert report.request_targets({"error": "no browser"}) == {}


def test_targets_and_table_from_numbers():
    assert report.meets("a_over_d", 1.25) and not report.meets("a_over_d", 1.26)
    assert report.meets("b_over_a", 20.0) and not report.meets("b_over_a", 19.9)
    assert report.meets("eigencam_first_map_s", 0.01) and report.meets("a_over_c", None) is None
    entry = {"ratios": {"a_over_d": 1.4, "a_over_c": 0.5, "b_over_a": 12.0},
             "b": {"partial": True}, "eigencam_first": {"map_only": {"median_s": 0.02}}}
    met = report.model_targets(entry)
    assert met == {"a_over_d": False, "a_over_c": True, "b_over_a": None,
                   "eigencam_first_map_s": True}  # a missed lower bound proves nothing


def _entry(model: str, b_over_d: float, partial: bool = False) -> dict:
    d = 0.5
    return {
        "model": model, "input_size": [224, 224],
        "a": {"median_s": 0.55, "peak_rss_mib": 900.0}, "c": {"median_s": 0.8},
        "d": {"median_s": d},
        "b": {"median_s": b_over_d * d, "partial": partial, "repeats": 3,
              "per_object_over_d": {"gradcam@first": 1.4, "gradcam@last": 1.2,
                                    "eigencam@first": 0.6}},
        "ratios": {"a_over_d": 1.1, "a_over_c": 0.69, "b_over_a": round(b_over_d / 1.1, 3),
                   "b_over_d": b_over_d},
        "eigencam_first": {"map_only": {"median_s": 0.004}},
    }


def test_an_unreachable_ratio_is_told_apart_from_a_missed_one():
    vit, cnn = _entry("vit", 15.0), _entry("cnn", 40.0)
    lower = _entry("partial", 15.0, partial=True)
    assert report.unattainable(vit) and not report.unattainable(cnn)
    assert not report.unattainable(lower)  # a lower bound under 20 proves nothing
    for e in (vit, cnn, lower):
        e["targets_met"] = report.model_targets(e)
    assert vit["targets_met"]["b_over_a"] is False  # still reported as missed
    results = {"started": "2026-11-25T00:00:00", "command": "python -m bench.run",
               "machine": {"cpu_model": "cpu", "usable_cpus": 2, "torch": "2", "device": "cpu",
                           "torch_threads": 2},
               "settings": {"repeats": 5, "top_k": 3, "batch": 8},
               "models": [vit, cnn, lower]}
    assert report.summary(results)["b_over_a_unattainable"] == ["vit"]
    md = report.markdown(results)
    assert "(pytorch-grad-cam: 3 runs)" in md
    row = next(line for line in md.splitlines() if line.startswith("| vit "))
    assert "| 13.64 ✗ | 15.00 |" in row
    (note,) = [line for line in md.splitlines() if "cannot be reached" in line]
    assert note.startswith("vit: ") and "15.0 floors" in note
    assert "2 gradient objects costs 1.20–1.40 floors" in note and "Eigen-CAM objects 0.60" in note
