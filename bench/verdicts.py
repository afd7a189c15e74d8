"""Cost of the verdicts on the bundled model: scoring all 12 panels (+ 3 baselines) with the
chosen protocol (16-px cells, mean fill, 16 steps, MoRF and LeRF) and the whole verdict.

    OMP_NUM_THREADS=2 python bench/verdicts.py [--repeat 3]   # issue 14: < 10 s on 2 cores

Prints one JSON line: best-of-``repeat`` seconds for the faithfulness curves, the whole
:func:`xai.verdict.judge` (plus class-sensitivity and stability passes) and the sanity check,
with the number of images forwarded and batched forward calls.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import xai  # noqa: E402
from xai.sanity import sanity_check  # noqa: E402
from xai.verdict import faithfulness, judge  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--image", default=str(ROOT / "examples" / "cat.png"))
    p.add_argument("--steps", type=int, default=16, help="removal steps (the protocol: 16)")
    args = p.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    model = xai.load_model("efficientnet_lite0")
    r = xai.explain(model, args.image, xai.DEFAULT_METHODS, xai.DEFAULT_DEPTHS)
    tgt = r.target_index()
    best = {"faithfulness_s": float("inf"), "verdict_s": float("inf"), "sanity_s": float("inf")}
    forwards = batches = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        curves, _ = faithfulness(model, r, tgt, n_steps=args.steps)
        best["faithfulness_s"] = min(best["faithfulness_s"], time.perf_counter() - t)
        forwards, batches = curves.forwards, curves.batches
        t = time.perf_counter()
        report = sanity_check(model, r)
        best["sanity_s"] = min(best["sanity_s"], time.perf_counter() - t)
        t = time.perf_counter()
        judge(model, r, sanity=report, n_steps=args.steps)
        best["verdict_s"] = min(best["verdict_s"], time.perf_counter() - t)
    print(json.dumps({"model": model.name, "threads": threads, "steps": args.steps,
                      "panels": 12, "baselines": 3,
                      "images": forwards, "forward_calls": batches,
                      "load_average": os.getloadavg()[0],
                      **{k: round(v, 2) for k, v in best.items()}}))


if __name__ == "__main__":
    main()
