"""Dataset throughput: images/s of the local pipeline, the Ray pipeline (ray.init with this
machine's CPUs), a loop of single ``xai.explain`` calls and pytorch-grad-cam's loop.

    python -m bench.dataset --n 64 --rounds 2 --out bench/results

Every path explains the same composite images (the examples on grey canvases, as the tests
make them) with the 4 methods x first/middle/last for the top-1 class; the pipelines also
compute the per-panel statistics and write the Parquet manifest (no overlays). Rounds
alternate the paths; the medians are reported. Model loading is outside the timings; Ray's
actor start (which loads the model once per actor) is inside them, as a user pays it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import xai
from bench.measure import load_average
from bench.workloads import Workload

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _images(work: Path, n: int) -> list:
    from annotated import make_set

    from xai.datasets import read_samples

    make_set(work / "images", n)
    return read_samples([str(work / "images")])


def local_rate(model, samples, work: Path, batch_size: int, workers: int) -> float:
    from xai.batch import RunOptions
    from xai.dataset_run import run_local

    out = work / "local"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    run_local(samples, RunOptions(out=str(out), overlays=False), model=model,
              batch_size=batch_size, workers=workers, progress=False)
    return len(samples) / (time.perf_counter() - t)


def ray_rate(samples, work: Path, batch_size: int, threads: int) -> float:
    from xai.batch import RunOptions
    from xai.ray_pipeline import run_ray

    out = work / "ray"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    run_ray(samples, RunOptions(out=str(out), overlays=False), batch_size=batch_size,
            threads=threads)
    return len(samples) / (time.perf_counter() - t)


def loop_rate(model, samples) -> float:
    t = time.perf_counter()
    for s in samples:
        r = xai.explain(model, s.path, fit="full")
        for m in r.methods:  # every map at image size, as the pipeline reads them
            for d in r.depths:
                r.cam(m, d)
    return len(samples) / (time.perf_counter() - t)


def gradcam_loop_rate(model, samples) -> float:
    """pytorch-grad-cam: one object per method x layer per image (its documented use)."""
    from PIL import Image

    works = [Workload(model, np.asarray(Image.open(s.path).convert("RGB"))) for s in samples]
    t = time.perf_counter()  # preprocessing and layer lookup (Workload) are not timed
    for work in works:
        for m in xai.DEFAULT_METHODS:
            for d in xai.DEFAULT_DEPTHS:
                work.reference_one(m, d)
                work.clear_grads()
    return len(samples) / (time.perf_counter() - t)


def components(model, work: Path, batch_size: int) -> dict:
    """CPU milliseconds per image on one thread (process time, so other load on the machine
    barely shifts them), on ImageNet-sized JPEGs (500x375): decoding + preprocessing, the
    batched pass (forward, backward, maps) and the statistics the pipeline adds."""
    from PIL import Image

    from xai.batch import BatchExplainer, RunOptions
    from xai.datasets import read_samples
    from xai.decoding import decode, model_config
    from xai.passes import run_pass
    from xai.targets import RankTarget

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = work / "jpeg"
    folder.mkdir(exist_ok=True)
    src = Image.open(ROOT / "examples" / "cat_and_coffee.png").convert("RGB").resize((500, 375))
    for i in range(batch_size):
        src.rotate(i * 3).save(folder / f"{i}.jpg", quality=90)
    samples = read_samples([str(folder)])
    t = time.process_time()
    decoded = [decode(s.to_dict(), model_config(model), "full", False) for s in samples]
    t_decode = time.process_time() - t
    ex = BatchExplainer(model, RunOptions(overlays=False))
    ex.rows(decoded)  # warm-up
    x = torch.stack([d["tensor"] for d in decoded])
    passes, rows = [], []
    for _ in range(3):  # interleaved; medians
        t = time.process_time()
        with torch.inference_mode(False):
            run_pass(model, x, list(ex.layers.values()), ex.methods, [RankTarget(0)])
        passes.append(time.process_time() - t)
        t = time.process_time()
        ex.rows(decoded)
        rows.append(time.process_time() - t)
    torch.set_num_threads(threads)
    n, t_pass, t_rows = len(samples), statistics.median(passes), statistics.median(rows)
    return {"decode_ms": 1e3 * t_decode / n, "pass_ms": 1e3 * t_pass / n,
            "stats_ms": 1e3 * max(0.0, t_rows - t_pass) / n, "image": "500x375 JPEG"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="dataset throughput: local vs Ray vs loops")
    ap.add_argument("--n", type=int, default=64, help="images per pipeline run")
    ap.add_argument("--n-reference", type=int, default=4, help="images for pytorch-grad-cam")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads, the same for every path (Ray: per actor)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import ray

    work = Path(tempfile.mkdtemp(prefix="xai-bench-dataset-"))
    samples = _images(work, args.n)
    model = xai.load_model()
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_init = time.perf_counter() - t
    load_before = load_average()
    rates: dict[str, list[float]] = {"local": [], "ray": [], "explain loop": [],
                                     "pytorch-grad-cam loop": []}
    loop_n = len(samples)
    for r in range(args.rounds):
        rates["local"].append(local_rate(model, samples, work, args.batch_size, args.workers))
        rates["ray"].append(ray_rate(samples, work, args.batch_size, args.threads))
        rates["explain loop"].append(loop_rate(model, samples[:loop_n]))
        if r == 0:
            rates["pytorch-grad-cam loop"].append(
                gradcam_loop_rate(model, samples[:args.n_reference]))
        print({k: [round(v, 3) for v in vs] for k, vs in rates.items()}, flush=True)
    ray.shutdown()
    parts = components(model, work, args.batch_size)
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    result = {"images": args.n, "explain_loop_images": loop_n,
              "reference_images": args.n_reference, "batch_size": args.batch_size,
              "workers": args.workers, "rounds": args.rounds, "images_per_s": med,
              "runs": rates, "ray_init_s": round(ray_init, 2),
              "ray_overhead": med["local"] / med["ray"] - 1, "components_ms": parts,
              "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "load_average": [load_before, load_average()],
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dataset.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
