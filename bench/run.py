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
    load_average,
    log,
    machine,
    peak_rss_mib,
    release_memory,
    reset_peak_rss,
    rss_mib,
)
from bench.model_bench import MAX_REPEAT_FACTOR, bench_model  # noqa: E402
from bench.workloads import (  # noqa: E402
    DEFAULT_MODELS,
    DEPTHS,
    Workload,
    example_images,
    load,
    model_name,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["cat.png", "coffee.png", "rocket.png", "cat_and_coffee.png"]
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
