"""Targets, ratios and the README table from the benchmark's results dict."""

from __future__ import annotations

import json
from pathlib import Path

TARGETS = {
    "a_over_d": ("<=", 1.25),
    "a_over_c": ("<=", 1.0),
    "b_over_a": (">=", 20.0),
    "eigencam_first_map_s": ("<", 0.5),
}


def meets(name: str, value: float | None) -> bool | None:
    """Whether ``value`` meets target ``name`` (None when it was not measured)."""
    if value is None:
        return None
    op, bound = TARGETS[name]
    return value <= bound if op == "<=" else value >= bound if op == ">=" else value < bound


def model_targets(entry: dict) -> dict[str, bool | None]:
    """The issue's targets for one model's entry."""
    ratios = entry.get("ratios", {})
    eigen = entry.get("eigencam_first", {}).get("map_only", {}).get("median_s")
    out = {k: meets(k, ratios.get(k)) for k in ("a_over_d", "a_over_c", "b_over_a")}
    if entry.get("b", {}).get("partial") and out["b_over_a"] is False:
        out["b_over_a"] = None  # a lower bound that misses says nothing
    out["eigencam_first_map_s"] = meets("eigencam_first_map_s", eigen)
    return out


def unattainable(entry: dict) -> bool:
    """Whether (b)/(a) >= 20 is out of reach for any gallery: no gallery does less than the
    floor (d), so (b)/(a) <= (b)/(d); when that bound is under 20, so is every (b)/(a)."""
    bound = entry.get("ratios", {}).get("b_over_d")
    return (bound is not None and not entry.get("b", {}).get("partial")
            and not meets("b_over_a", bound))


def summary(results: dict) -> dict:
    """Per target: met on every model where measured (None if measured nowhere)."""
    per: dict[str, bool | None] = {}
    for key in TARGETS:
        values = [m["targets_met"].get(key) for m in results["models"] if "targets_met" in m]
        known = [v for v in values if v is not None]
        per[key] = all(known) if known else None
    growth = results.get("memory_growth") or {}
    per["memory_growth_within_5pct"] = growth.get("within_5pct")
    per.update(request_targets(results.get("request")))
    errors = [m["model"] for m in results["models"] if "error" in m]
    met = [v for v in per.values() if v is not None]
    return {"per_target": per, "all_met": bool(met) and all(met) and not errors,
            "models_failed": errors,
            "b_over_a_unattainable": [m["model"] for m in results["models"]
                                      if "error" not in m and unattainable(m)]}


def request_targets(request: dict | None) -> dict[str, bool | None]:
    """The request benchmark's targets: click to gallery <= 300 ms (EfficientNet-Lite0,
    640x480), /explain <= 1.5 x (/predict + engine), app memory within 5 %."""
    if not request or "error" in request:
        return {}
    rows = request.get("rows", [])
    click = [r["click_to_gallery_s"] for r in rows if r["model"] == "efficientnet_lite0"
             and r["image"] == "640x480" and "click_to_gallery_s" in r]
    return {"click_to_gallery_300ms": click[0] <= 0.3 if click else None,
            "explain_over_predict_engine_1_5": all(r["ratio"] <= 1.5 for r in rows)
            if rows else None,
            "app_memory_within_5pct": (request.get("memory") or {}).get("within_5pct")}


def _s(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms"


def _ratio(value: float | None, ok: bool | None, lower_bound: bool = False) -> str:
    if value is None:
        return "–"
    mark = {True: " ✓", False: " ✗", None: ""}[ok]
    bounds = [bound for _, bound in TARGETS.values()]
    digits = 3 if any(abs(value - b) < 0.005 for b in bounds) else 2  # 1.253 is not "1.25 ✗"
    return f"{'≥' if lower_bound else ''}{value:.{digits}f}{mark}"


def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value / 1024:.2f} GiB" if value >= 1024 else \
        f"{value:.0f} MiB"


def markdown(results: dict) -> str:
    """A README-ready section: the machine, the table, memory growth and the command."""
    m = results["machine"]
    load = results.get("load_average", {})
    lines = [
        f"Measured {results['started'][:10]} on {m['cpu_model']} ({m['usable_cpus']} CPUs, "
        f"torch {m['torch']} with {m['torch_threads']} threads, "
        f"OMP_WAIT_POLICY={m.get('omp_wait_policy')}, device `{m['device']}`; "
        f"load average {load.get('start')} at start, {load.get('end')} at end), batch 1, "
        f"medians of {results['settings']['repeats']}+ interleaved runs after warm-up "
        f"(pytorch-grad-cam: {_b_runs(results)}). "
        "Random weights except the bundled EfficientNet-Lite0.",
        "",
        "| Model (input) | (a) xai gallery | (b) pytorch-grad-cam | (c) fwd + full bwd "
        f"| (d) floor | (a)/(d) ≤ 1.25 | (a)/(c) ≤ 1.0 | (b)/(a) ≥ 20 | (b)/(d), the best "
        f"(b)/(a) can be | top-{results['settings']['top_k']} | batch of "
        f"{results['settings']['batch']}, per image | Eigen-CAM first stage | "
        "peak RSS (a) / (b) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in results["models"]:
        if "error" in e:
            lines.append(f"| {e['model']} | failed: {e['error'][:80]} |" + " |" * 11)
            continue
        h, w = e["input_size"]
        r, ok = e["ratios"], e["targets_met"]
        b = e.get("b", {})
        eig = e.get("eigencam_first", {})
        batch = e.get("batch", {})
        lines.append(
            f"| {e['model']} ({h}×{w}) | {_s(e['a']['median_s'])} | "
            f"{('≥ ' if b.get('partial') else '') + _s(b.get('median_s'))} | "
            f"{_s(e['c']['median_s'])} | {_s(e['d']['median_s'])} | "
            f"{_ratio(r.get('a_over_d'), ok.get('a_over_d'))} | "
            f"{_ratio(r.get('a_over_c'), ok.get('a_over_c'))} | "
            f"{_ratio(r.get('b_over_a'), ok.get('b_over_a'), b.get('partial', False))} | "
            f"{_ratio(r.get('b_over_d'), None, b.get('partial', False))} | "
            f"{_s(e.get('top_k', {}).get('median_s'))} | "
            f"{_s(batch.get('per_image_s'))} | "
            f"{_s(eig.get('map_only', {}).get('median_s'))} map, "
            f"{_s(eig.get('request', {}).get('median_s'))} request | "
            f"{_mib(e['a'].get('peak_rss_mib'))} / {_mib(b.get('peak_rss_mib'))} |")
    k = results["settings"]["top_k"]
    skipped = sorted({why for e in results["models"]
                      for o in e.get("b", {}).get("per_object", {}).values()
                      if (why := o.get("skipped"))})
    if skipped:
        lines += ["", "≥: (b) is a lower bound; pytorch-grad-cam objects "
                  + "; ".join(skipped) + "."]
    for e in results["models"]:
        if "error" not in e and unattainable(e):
            lines += ["", _unattainable_note(e)]
    growth = results.get("memory_growth")
    lines.append("")
    if growth and "error" not in growth:
        verdict = "within" if growth["within_5pct"] else "NOT within"
        lines.append(
            f"Memory: {growth['requests']} consecutive gallery requests ({growth['model']}, "
            f"maps + rendered gallery) in one process: peak RSS {growth['peak_after_5_mib']:.0f} "
            f"MiB after request 5, {growth['peak_after_n_mib']:.0f} MiB after request "
            f"{growth['requests']} ({growth['peak_growth_pct']:+.1f} %, {verdict} 5 %); "
            f"current RSS {growth['rss_after_5_mib']:.0f} → {growth['rss_after_n_mib']:.0f} MiB.")
    elif growth:
        lines.append(f"Memory growth check failed: {growth['error']}")
    request = results.get("request")
    if request:
        from bench.request import markdown as request_markdown

        lines += ["", f"Request benchmark failed: {request['error']}" if "error" in request
                  else request_markdown(request).rstrip()]
    lines += [
        "",
        "(a) `xai.explain`, 4 methods × first/middle/last for the top-1 class, the 12 maps "
        "brought to image size, from a decoded image (preprocessing included); (b) the same 12 "
        "maps with pytorch-grad-cam's GradCAM, GradCAMPlusPlus, EigenCAM and XGradCAM, one "
        "object per method × layer; (c) one forward + `loss.backward()` with parameter "
        "gradients; (d) the floor: a forward that records the graph only from the earliest "
        f"target layer, and one backward to its activations. Top-{k}: {k} targets from one "
        f"forward and {k} backward passes. Eigen-CAM first stage: the map alone, and a request "
        "(forward + map, no backward).",
        "",
        f"Command: `{results['command']}`",
    ]
    return "\n".join(lines) + "\n"


def _b_runs(results: dict) -> str:
    runs = sorted({e["b"].get("repeats") for e in results["models"] if e.get("b")} - {None})
    if not runs:
        return "not run"
    return "1 run" if runs == [1] else f"{'–'.join(str(n) for n in (runs[0], runs[-1]))} runs" \
        if len(runs) > 1 else f"{runs[0]} runs"


def _unattainable_note(e: dict) -> str:
    """Why (b)/(a) >= 20 cannot hold for this model, in its own measured numbers."""
    per = e["b"].get("per_object_over_d", {})
    grad = [v for k, v in per.items() if not k.startswith("eigencam")]
    eig = [v for k, v in per.items() if k.startswith("eigencam")]
    parts = []
    if grad:
        parts.append(f"each of its {len(grad)} gradient objects costs {min(grad):.2f}–"
                     f"{max(grad):.2f} floors (a forward and a full backward with parameter "
                     "gradients)")
    if eig:
        parts.append(f"each of its {len(eig)} Eigen-CAM objects {min(eig):.2f}–{max(eig):.2f} "
                     "(a forward and an SVD)")
    return (f"{e['model']}: (b)/(a) ≥ 20 cannot be reached by any gallery that computes the "
            f"maps: pytorch-grad-cam's 12 objects cost only {e['ratios']['b_over_d']:.1f} "
            f"floors ({'; '.join(parts)}), and no gallery costs less than the floor (d), "
            "so (b)/(a) ≤ (b)/(d) < 20.")


def write(results: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "results.json", out / "results.md"
    js.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md.write_text(markdown(results))
    return js, md
