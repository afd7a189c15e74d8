"""Benchmark the xai gallery against pytorch-grad-cam and the one-pass floor, in one run.

    python -m bench.run                       # the five models, results in bench/results/
    python -m bench.run --quick               # EfficientNet-Lite0 only, one repeat (smoke test)
    python -m bench.run --models resnet152 --repeats 9 --repeats-b 1

Writes ``results.json`` (every number, the machine, the load) and ``results.md`` (the table
for the README). Timings are medians of interleaved repeats after warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OpenMP's wait policy is left as the app runs with it (unset: threads spin briefly between
# parallel regions). OMP_WAIT_POLICY=PASSIVE (threads sleep at once) made the gallery 1.6-2.4x
# slower on 2 vCPUs, most of all the many small map ops; the policy used is recorded.
OMP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "unset")  # what torch's OpenMP reads

import torch  # noqa: E402

from bench import report  # noqa: E402
from bench.measure import (  # noqa: E402
    Sample,
    load_average,
    machine,
    peak_rss_mib,
    ratio,
    release_memory,
    reset_peak_rss,
    rss_mib,
    summarize,
    timed,
)
from bench.workloads import (  # noqa: E402
    DEFAULT_MODELS,
    DEPTHS,
    PassCounter,
    Workload,
    example_images,
    load,
    model_name,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["cat.png", "coffee.png", "rocket.png", "cat_and_coffee.png"]
MAX_REPEAT_FACTOR = 4
QUICK = {"min_seconds": 0.0, "repeats": 1, "repeats_extra": 1, "repeats_b": 1, "b_seconds": 0.0,
         "warmup": 0, "batch": 2, "growth_requests": 8, "b_max_svd_hw": 4096, "b_depths": ["last"]}
DEFAULTS = {"min_seconds": 8.0, "repeats": 5, "repeats_extra": 3, "repeats_b": 3,
            "b_seconds": 60.0, "warmup": 1,
            "batch": 8, "growth_requests": 50, "b_max_svd_hw": None, "b_depths": list(DEPTHS)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="timm names or aliases (comma or space separated); default: "
                        + ", ".join(DEFAULT_MODELS) + " (--quick: efficientnet_lite0)")
    p.add_argument("--repeats", type=int, help="timed runs of (a), (c), (d), at least "
                   "(default 5)")
    p.add_argument("--min-seconds", type=float, default=None,
                   help="repeat (a), (c), (d) until this long, up to "
                        f"{MAX_REPEAT_FACTOR}x --repeats (default 8; --quick: 0)")
    p.add_argument("--repeats-extra", type=int, help="timed runs of top-k, batch, Eigen-CAM "
                   "(default 3)")
    p.add_argument("--repeats-b", type=int, help="timed runs of pytorch-grad-cam, at most "
                   "(default 3)")
    p.add_argument("--b-seconds", type=float, help="no further run of pytorch-grad-cam once "
                   "another would take (b) past this long (default 60; it runs at least once)")
    p.add_argument("--warmup", type=int, help="untimed runs first (default 1)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--batch", type=int, help="images in the batch workload (default 8)")
    p.add_argument("--growth-requests", type=int,
                   help="gallery requests in the memory-growth check (default 50; 0: skip)")
    p.add_argument("--growth-model", default="efficientnet_lite0")
    p.add_argument("--skip-b", action="store_true", help="do not run pytorch-grad-cam")
    p.add_argument("--b-max-svd-hw", type=int,
                   help="skip pytorch-grad-cam's EigenCAM (a full SVD) on maps with more "
                        "positions; (b) is then a lower bound")
    p.add_argument("--b-depths", nargs="+", choices=DEPTHS,
                   help="depths pytorch-grad-cam runs at (default all; --quick: last); fewer "
                        "make (b) a lower bound")
    p.add_argument("--no-profile", action="store_true",
                   help="skip the per-phase breakdown (from Explanation.timings)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--image", default=str(ROOT / "examples" / "cat.png"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--no-request", action="store_true", help="skip the request benchmark "
                   "(e)-(g) (bench.request: served app, browser, app memory)")
    p.add_argument("--request-args", default="", help="options for bench.request, quoted "
                   "(default: its own; --quick: its --quick with 1 repeat and 5 requests)")
    p.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(
        f"{k}={v}" for k, v in QUICK.items()))
    args = p.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    names = args.models or (["efficientnet_lite0"] if args.quick else list(DEFAULT_MODELS))
    args.models = [model_name(n) for item in names for n in item.split(",") if n.strip()]
    if min(args.repeats, args.repeats_extra, args.repeats_b) < 1 or args.warmup < 0:
        p.error("repeats must be >= 1 and warmup >= 0")
    return args


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _repeat(fn, n: int, device: torch.device, counter: PassCounter | None = None
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


def _measure(fn, n: int, device: torch.device, module: torch.nn.Module) -> dict:
    """Summary of ``n`` timed calls, with the passes each call makes."""
    counter = PassCounter(module)
    out = summarize(_repeat(fn, n, device, counter))
    out["passes"] = {k: v // n for k, v in counter.counts().items()}
    return out


def _median_dict(rows: list[dict[str, float]]) -> dict[str, float]:
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


def _mem_available() -> float | None:
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
    plan = work.reference_plan(args.b_max_svd_hw, _mem_available(), tuple(args.b_depths))
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
    # (a), (c), (d) interleaved, rotating the order, so that load changes hit all three.
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
        log(f"{name}: repeat {i}: " + ", ".join(
            f"({k}) {v[-1].wall:.3f} s" for k, v in samples.items()))
    for key, _ in steps:
        entry[key] = summarize(samples[key])
        entry[key]["passes"] = {k: v // i for k, v in counters[key].counts().items()}
    entry["a"]["engine_timings"] = _median_dict(engine_timings)
    entry["d"].update({f"{k}_s": v for k, v in _median_dict(floor_timings).items()})
    entry["d"]["clones_leaf"] = work.floor_clones

    k, n = args.top_k, args.repeats_extra
    batch_imgs = images[:args.batch]
    acts = work.first_activations()
    if args.warmup:
        work.top_k(k)
        work.batch(batch_imgs)
        work.eigen_request()
    entry["top_k"] = _measure(lambda: work.top_k(k), n, device, work.module)
    entry["top_k"]["k"] = k
    entry["batch"] = _measure(lambda: work.batch(batch_imgs), n, device, work.module)
    entry["batch"].update(size=len(batch_imgs),
                          per_image_s=round(entry["batch"]["median_s"] / len(batch_imgs), 4))
    request = _measure(work.eigen_request, n, device, work.module)
    entry["eigencam_first"] = {
        "layer": work.layers["first"].name, "shape": list(work.layers["first"].shape),
        "request": request, "request_passes": request.pop("passes"),
        "map_only": summarize(_repeat(lambda: work.eigen_map(acts), n, device)),
    }
    log(f"{name}: top-{k} {entry['top_k']['median_s']:.3f} s, batch of {len(batch_imgs)} "
        f"{entry['batch']['median_s']:.3f} s, Eigen-CAM first stage "
        f"{entry['eigencam_first']['map_only']['median_s']:.4f} s")
    if not args.no_profile:
        entry["profile"] = profile_gallery(work)

    a, c, d = (entry[x]["median_s"] for x in "acd")
    entry["ratios"] = {"a_over_d": ratio(a, d), "a_over_c": ratio(a, c),
                       # the engine alone: xai.explain's own total, maps left at layer size
                       "explain_over_d": ratio(entry["a"]["engine_timings"].get("total"), d)}
    entry["ratios_paired"] = {
        "a_over_d": round(statistics.median(
            sa.wall / sd.wall for sa, sd in zip(samples["a"], samples["d"])), 3),
        "a_over_c": round(statistics.median(
            sa.wall / sc.wall for sa, sc in zip(samples["a"], samples["c"])), 3),
    }
    if not args.skip_b:
        release_memory()
        log(f"{name}: (b) pytorch-grad-cam, up to {args.repeats_b} run(s) of 12 objects")
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
    entry["targets_met"] = report.model_targets(entry)
    entry["load_average_end"] = load_average()
    entry["wall_s"] = round(time.perf_counter() - t0, 1)
    log(f"{name}: ratios {entry['ratios']} targets {entry['targets_met']} "
        f"({entry['wall_s']:.0f} s)")
    return entry


def growth_check(model, n: int, image) -> dict:
    """``n`` consecutive gallery requests (maps + rendered gallery): does memory grow?"""
    from xai.render import gallery

    work = Workload(model, image)
    reset_peak_rss()
    rss, peaks = [], []
    for _ in range(n):
        gallery(work.gallery())
        rss.append(rss_mib())
        peaks.append(peak_rss_mib())
    k = min(5, n) - 1
    peak_growth = (peaks[-1] - peaks[k]) / peaks[k] * 100
    rss_growth = (rss[-1] - rss[k]) / rss[k] * 100
    return {
        "model": model.name, "requests": n, "compared_with_request": k + 1,
        "rss_mib": [round(v, 1) for v in rss], "peak_rss_mib": [round(v, 1) for v in peaks],
        "rss_after_5_mib": round(rss[k], 1), "rss_after_n_mib": round(rss[-1], 1),
        "peak_after_5_mib": round(peaks[k], 1), "peak_after_n_mib": round(peaks[-1], 1),
        "rss_growth_pct": round(rss_growth, 2), "peak_growth_pct": round(peak_growth, 2),
        "within_5pct": bool(peak_growth <= 5.0 and rss_growth <= 5.0),
    }


def request_bench(args: argparse.Namespace) -> dict:
    """(e)-(g) from :mod:`bench.request`, also written to its own request.json/md."""
    from bench import request

    extra = shlex.split(args.request_args) or (
        ["--quick", "--repeats", "1", "--memory", "5"] if args.quick else [])
    threads = ["--threads", str(args.threads)] if args.threads else []
    argv = threads + ["--out", args.out] + extra
    log(f"request benchmark: python -m bench.request {' '.join(argv)}")
    try:
        out = request.measure(request.parse_args(argv))
    except Exception as exc:  # a failure is a result too
        log(f"request benchmark FAILED {exc!r}")
        return {"error": repr(exc)}
    request.write(out | {"command": "python -m bench.request " + " ".join(argv)},
                  Path(args.out))
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, argv)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    started = time.perf_counter()
    n_images = max(args.batch, 1)
    paths = [args.image] + [str(ROOT / "examples" / f) for f in EXAMPLES
                            if str(ROOT / "examples" / f) != str(Path(args.image))]
    images = example_images(paths, n_images)
    results: dict = {
        "schema": 1,
        "command": " ".join(["python -m bench.run"] + [
            shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)]),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(device) | {"omp_wait_policy": OMP_WAIT_POLICY},
        "load_average": {"start": load_average()},
        "settings": {k: getattr(args, k) for k in (
            "models", "repeats", "min_seconds", "repeats_extra", "repeats_b", "b_seconds", "warmup",
            "top_k",
            "batch", "growth_requests", "growth_model", "skip_b", "b_max_svd_hw", "b_depths",
            "image", "quick", "threads")},
        "targets": {k: f"{op} {v}" for k, (op, v) in report.TARGETS.items()},
        "models": [],
    }
    log(f"{results['machine']['cpu_model']}, {results['machine']['torch_threads']} torch "
        f"threads, load {results['load_average']['start']}; models {args.models}")
    loaded: dict = {}  # the growth check's model, reused if it is benchmarked too
    if args.growth_requests:
        log(f"memory growth: {args.growth_requests} gallery requests on {args.growth_model}")
        try:
            name = model_name(args.growth_model)
            loaded[name] = load(name, device)
            results["memory_growth"] = growth_check(loaded[name], args.growth_requests,
                                                    images[0])
            if name not in args.models:
                loaded.clear()
        except Exception as exc:  # a failure is a result too
            results["memory_growth"] = {"model": args.growth_model, "error": repr(exc)}
        log(f"memory growth: {results['memory_growth']}")
        release_memory()
    for name in args.models:
        try:
            results["models"].append(bench_model(name, args, device, images, loaded))
        except Exception as exc:  # keep the other models' numbers
            log(f"{name}: FAILED {exc!r}")
            results["models"].append({"model": name, "error": repr(exc)})
        release_memory()
        report.write(results | {"load_average": results["load_average"] | {
            "end": load_average()}, "summary": report.summary(results)}, args.out)
    if not args.no_request:
        results["request"] = request_bench(args)
    results["load_average"]["end"] = load_average()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["summary"] = report.summary(results)
    js, md = report.write(results, args.out)
    log(f"wrote {js} and {md} in {results['duration_s']:.0f} s")
    print(md.read_text())
    return results


if __name__ == "__main__":
    main()
