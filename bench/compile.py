"""Is ``torch.compile`` worth it on the CPU? First request and later requests, compiled vs eager.

    python -m bench.compile [--models efficientnet_lite0 resnet152] [--repeats 5]

The engine's pass hooks the requested layers and switches grad mode on inside a hook, so a
compiled forward breaks its graph there; this measures what that leaves. The issue's rule:
adopt it only where the first request stays under 10 s and later requests gain >= 20 %.
Writes ``bench/results/compile.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import xai

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "examples" / "cat.png"


def _gallery(model: xai.LoadedModel) -> tuple[float, dict]:
    t = time.perf_counter()
    r = xai.explain(model, CAT)
    maps = {(m, d): r.cam(m, d) for m in r.methods for d in r.depths}
    return time.perf_counter() - t, maps


def measure(name: str, repeats: int) -> dict:
    """Eager vs compiled: first call, median of later calls, max map difference."""
    model = xai.load_model(name, pretrained=name == xai.DEFAULT_MODEL, device="cpu")
    _gallery(model)  # eager warm-up (trace, allocations)
    eager = [_gallery(model)[0] for _ in range(repeats)]
    _, ref = _gallery(model)
    model.module.compile()  # in place: module names and hooks stay as they are
    first, maps = _gallery(model)
    later = [_gallery(model)[0] for _ in range(repeats)]
    diff = max(float(np.abs(maps[k] - ref[k]).max()) for k in ref)
    e, c = statistics.median(eager), statistics.median(later)
    return {"model": name, "eager_s": round(e, 4), "compiled_first_s": round(first, 2),
            "compiled_s": round(c, 4), "gain": round(1 - c / e, 3), "max_map_diff": diff,
            "adopt": bool(first < 10 and c <= 0.8 * e and diff <= 1e-5)}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m bench.compile", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet152"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    out = ROOT / "bench" / "results" / "compile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        rows.append(measure(name, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
        out.write_text(json.dumps({"command": "python -m bench.compile " + " ".join(
            argv or sys.argv[1:]), "torch": torch.__version__, "threads": args.threads,
            "rows": rows}, indent=2))  # after each model: a long compile may be cut short
    return rows


if __name__ == "__main__":
    main()
