"""One model's measurements for :mod:`bench.run`: (a) the xai gallery, (c) a forward and full
backward, (d) the one-pass floor (interleaved), top-k, a batch, Eigen-CAM's first stage, and
(b) pytorch-grad-cam's objects."""

from __future__ import annotations

import statistics
import time

import torch

from bench import report
from bench.measure import (
    Sample,
    load_average,
    log,
    ratio,
    release_memory,
    summarize,
    timed,
)
from bench.workloads import PassCounter, Workload, load

MAX_REPEAT_FACTOR = 4


def repeat_samples(fn, n: int, device: torch.device, counter: PassCounter | None = None
                   ) -> list[Sample]:
    """``n`` timed calls of ``fn`` (passes counted by ``counter`` where given)."""
    samples = []
    for _ in range(n):
        if counter is None:
            s, _ = timed(fn, device)
        else:
            with counter:
                s, _ = timed(fn, device)
        samples.append(s)
    return samples


def measure_passes(fn, n: int, device: torch.device, module: torch.nn.Module) -> dict:
    """Summary of ``n`` timed calls, with the passes each call makes."""
    counter = PassCounter(module)
    out = summarize(repeat_samples(fn, n, device, counter))
    out["passes"] = {k: v // n for k, v in counter.counts().items()}
    return out


def median_dict(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for r in rows for k in r if isinstance(r[k], (int, float))}
    return {k: round(statistics.median(r[k] for r in rows if k in r), 4) for k in sorted(keys)}


def profile_gallery(work: Workload) -> dict:
    """Split one gallery call's time into the engine's phases, read from the
    :attr:`xai.Explanation.timings` the engine records (no profiler, no names matched)."""
    t0 = time.perf_counter()
    result = work.gallery()
    total = time.perf_counter() - t0
    timings = result.timings
    parts = {k: float(timings.get(k, 0.0)) for k in ("preprocess", "forward", "backward", "cams")}
    parts["maps_to_image_size"] = max(0.0, total - float(timings["total"]))
    parts["other"] = max(0.0, total - sum(parts.values()))
    return {"total_s": round(total, 4),
            "seconds": {k: round(v, 4) for k, v in parts.items()},
            "share": {k: round(v / total, 3) for k, v in parts.items()}}


def mem_available() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_reference(work: Workload, args, device: torch.device) -> tuple[dict, dict]:
    """(b): every pytorch-grad-cam object, timed one by one; the sum is one gallery."""
    plan = work.reference_plan(args.b_max_svd_hw, mem_available(), tuple(args.b_depths))
    if args.warmup:  # imports, first-call allocations
        work.reference_one("gradcam", args.b_depths[-1])
        work.clear_grads()
    per: dict[str, list[Sample]] = {f"{m}@{d}": [] for (m, d), why in plan.items() if not why}
    totals: list[Sample] = []
    maps = {}
    counter = PassCounter(work.module)
    runs, spent = 0, 0.0
    while runs < args.repeats_b and (runs == 0 or spent + spent / runs <= args.b_seconds):
        runs += 1
        parts = []
        for (method, depth), why in plan.items():
            if why:
                continue
            with counter:
                s, out = timed(lambda m=method, d=depth: work.reference_one(m, d), device)
            work.clear_grads()  # as for (c): parameter gradients freed outside the timing
            per[f"{method}@{depth}"].append(s)
            parts.append(s)
            maps[(method, depth)] = out
            log(f"  (b) {method}@{depth}: {s.wall:.2f} s")
        totals.append(Sample(sum(p.wall for p in parts), sum(p.cpu for p in parts),
                             max(p.peak_rss for p in parts), min(p.base_rss for p in parts),
                             max((p.device_peak or 0) for p in parts) if device.type == "cuda"
                             else None))
        spent += totals[-1].wall
    out = summarize(totals)
    out["per_object"] = {k: summarize(v) for k, v in per.items()}
    for (method, depth), why in plan.items():
        if why:
            out["per_object"][f"{method}@{depth}"] = {"skipped": why}
    out["partial"] = any(plan.values())
    out["objects"] = len(per)
    out["passes"] = {k: v // runs for k, v in counter.counts().items()}
    return out, maps


def bench_model(name: str, args, device: torch.device, images, loaded: dict) -> dict:
    """Every measurement for one model (``loaded``: models already loaded, by name)."""
    t0 = time.perf_counter()
    model = loaded.pop(name, None) or load(name, device)
    work = Workload(model, images[0])
    entry: dict = {
        "model": name, "input_size": list(model.input_size), "pretrained": model.pretrained,
        "load_s": round(time.perf_counter() - t0, 2), "target": work.target,
        "layers": {d: {"name": i.name, "shape": list(i.shape), "format": i.fmt}
                   for d, i in work.layers.items()},
        "earliest_layer": work.earliest,
    }
    log(f"{name}: layers " + ", ".join(f"{d}={i.name} {i.size}" for d, i in work.layers.items()))
    for _ in range(args.warmup):  # (the Workload's set-up already ran one gallery)
        work.gallery()
        work.full_backward()
        work.clear_grads()
        work.floor()
    interleaved(work, args, device, entry)
    extras(work, args, device, images, entry)
    a, c, d = (entry[x]["median_s"] for x in "acd")
    entry["ratios"] = {"a_over_d": ratio(a, d), "a_over_c": ratio(a, c),
                       # the engine alone: xai.explain's own total, maps left at layer size
                       "explain_over_d": ratio(entry["a"]["engine_timings"].get("total"), d)}
    if not args.skip_b:
        reference(work, args, device, entry)
    entry["targets_met"] = report.model_targets(entry)
    entry["load_average_end"] = load_average()
    entry["wall_s"] = round(time.perf_counter() - t0, 1)
    log(f"{name}: ratios {entry['ratios']} targets {entry['targets_met']} "
        f"({entry['wall_s']:.0f} s)")
    return entry


def interleaved(work: Workload, args, device: torch.device, entry: dict) -> None:
    """(a), (c), (d) into ``entry``, interleaved and rotating the order, so that load changes
    hit all three; with their pass counts, the engine's own timings and the floor's."""
    steps = [("a", work.gallery), ("c", work.full_backward), ("d", work.floor)]
    samples: dict[str, list[Sample]] = {k: [] for k, _ in steps}
    counters = {k: PassCounter(work.module) for k, _ in steps}
    engine_timings, floor_timings = [], []
    t_loop, i = time.perf_counter(), 0
    while i < args.repeats or (time.perf_counter() - t_loop < args.min_seconds
                               and i < MAX_REPEAT_FACTOR * args.repeats):
        for key, fn in steps[i % 3:] + steps[:i % 3]:
            with counters[key]:
                s, out = timed(fn, device)
            samples[key].append(s)
            if key == "a":
                engine_timings.append(out.timings)
            elif key == "c":
                work.clear_grads()
            else:
                floor_timings.append(out)
        i += 1
        log(f"{entry['model']}: repeat {i}: " + ", ".join(
            f"({k}) {v[-1].wall:.3f} s" for k, v in samples.items()))
    for key, _ in steps:
        entry[key] = summarize(samples[key])
        entry[key]["passes"] = {k: v // i for k, v in counters[key].counts().items()}
    entry["a"]["engine_timings"] = median_dict(engine_timings)
    entry["d"].update({f"{k}_s": v for k, v in median_dict(floor_timings).items()})
    entry["d"]["clones_leaf"] = work.floor_clones
    entry["ratios_paired"] = {
        "a_over_d": round(statistics.median(
            sa.wall / sd.wall for sa, sd in zip(samples["a"], samples["d"])), 3),
        "a_over_c": round(statistics.median(
            sa.wall / sc.wall for sa, sc in zip(samples["a"], samples["c"])), 3),
    }


def extras(work: Workload, args, device: torch.device, images, entry: dict) -> None:
    """Top-k, a batch and the Eigen-CAM first-stage request into ``entry``; the profile."""
    k, n = args.top_k, args.repeats_extra
    batch_imgs = images[:args.batch]
    acts = work.first_activations()
    if args.warmup:
        work.top_k(k)
        work.batch(batch_imgs)
        work.eigen_request()
    entry["top_k"] = measure_passes(lambda: work.top_k(k), n, device, work.module)
    entry["top_k"]["k"] = k
    entry["batch"] = measure_passes(lambda: work.batch(batch_imgs), n, device, work.module)
    entry["batch"].update(size=len(batch_imgs),
                          per_image_s=round(entry["batch"]["median_s"] / len(batch_imgs), 4))
    request = measure_passes(work.eigen_request, n, device, work.module)
    entry["eigencam_first"] = {
        "layer": work.layers["first"].name, "shape": list(work.layers["first"].shape),
        "request": request, "request_passes": request.pop("passes"),
        "map_only": summarize(repeat_samples(lambda: work.eigen_map(acts), n, device)),
    }
    log(f"{entry['model']}: top-{k} {entry['top_k']['median_s']:.3f} s, batch of {len(batch_imgs)} "
        f"{entry['batch']['median_s']:.3f} s, Eigen-CAM first stage "
        f"{entry['eigencam_first']['map_only']['median_s']:.4f} s")
    if not args.no_profile:
        entry["profile"] = profile_gallery(work)


def reference(work: Workload, args, device: torch.device, entry: dict) -> None:
    """(b) into ``entry``: pytorch-grad-cam's objects, their agreement with the engine's
    maps, and (b) over (a) and over the floor (d)."""
    a, d = entry["a"]["median_s"], entry["d"]["median_s"]
    release_memory()
    log(f"{entry['model']}: (b) pytorch-grad-cam, up to {args.repeats_b} run(s) of 12 objects")
    entry["b"], ref_maps = run_reference(work, args, device)
    entry["agreement_max_abs_diff"] = work.agreement(ref_maps)
    entry["ratios"]["b_over_a"] = ratio(entry["b"]["median_s"], a)
    # No gallery can do less than the floor, so (b)/(d) is the best (b)/(a) there can be.
    entry["ratios"]["b_over_d"] = ratio(entry["b"]["median_s"], d)
    entry["b"]["per_object_over_d"] = {
        k: ratio(v.get("median_s"), d) for k, v in entry["b"]["per_object"].items()
        if v.get("median_s") is not None}
    if entry["b"]["partial"]:
        entry["ratios"]["b_over_a_is_lower_bound"] = True
    eig = entry["b"]["per_object"].get("eigencam@first", {})
    entry["eigencam_first"]["pytorch_grad_cam_s"] = eig.get("median_s")
