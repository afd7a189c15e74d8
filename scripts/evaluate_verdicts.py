"""Which map to believe: meta-evaluate the perturbation protocols, then test the verdicts.

    python scripts/evaluate_verdicts.py meta      # docs/metaeval.{json,md}   (~10 min, 2 cores)
    python scripts/evaluate_verdicts.py verdicts  # docs/verdicts.{json,md}   (~5 min)

*meta*: every protocol variant (pixel / 16-px patch x mean / blur / ROAD fill x MoRF / LeRF /
LeRF-MoRF x 16 / 8 steps) on the known-answer set (:mod:`xai.metaeval`): two-object composites
of scikit-image pictures, the target on either side; plus the chosen protocol on a random-weight
model. *verdicts*: the full verdict (:mod:`xai.verdict`) on every two-object case (does the
panel marked best point at the target's half?), its seed rank correlation over the 12 panels,
and the cat example.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import xai  # noqa: E402
from xai import metaeval  # noqa: E402

DOCS = ROOT / "docs"
PAIRS = [("cat", "coffee"), ("rocket", "cat"), ("coffee", "motorcycle"), ("motorcycle", "rocket"),
         ("coffee", "rocket")]  # each object on both sides; 10 cases (both targets per sheet)
CHOSEN = {"patch": 16, "fill": "blur", "score": "lerf-morf", "steps": 16}


def objects(model) -> dict[str, tuple[Image.Image, int]]:
    """scikit-image pictures, each with the class the model gives it alone."""
    from skimage import data

    pics = {"cat": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket(),
            "motorcycle": data.stereo_motorcycle()[0]}
    out = {}
    for name, arr in pics.items():
        img = Image.fromarray(arr).convert("RGB")
        top = xai.predict(model, img, k=1)[0]
        print(f"{name}: {top.label} ({top.probability:.2f})", file=sys.stderr)
        out[name] = (img, top.index)
    return out


def meta(model, cases) -> dict:
    t0 = time.perf_counter()
    rows = metaeval.meta_evaluate(model, cases[:8], seed_cases=4,
                                  progress=lambda s: print(s, file=sys.stderr, flush=True))
    rnd = xai.load_model("efficientnet_lite0", pretrained=False)
    c = CHOSEN
    random = {name: metaeval.random_model_margin(rnd, cases[:4], p, f, s)
              for name, (p, f, s) in {"chosen": (c["patch"], c["fill"], c["score"]),
                                      "pixel, mean, MoRF": (1, "mean", "morf")}.items()}
    return {"rows": rows, "random_model": random, "cases": [k.name for k in cases[:8]],
            "chosen": metaeval.variant_name(c["patch"], c["fill"], c["score"], c["steps"]),
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("meta", "verdicts"))
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model = xai.load_model("efficientnet_lite0")
    objs = objects(model)
    cases = metaeval.build_cases(model, objs, PAIRS)
    DOCS.mkdir(exist_ok=True)
    if args.what == "meta":
        out = meta(model, cases)
        (DOCS / "metaeval.json").write_text(json.dumps(out, indent=1))
        md = metaeval.markdown(out["rows"], out["chosen"])
        rnd = "; ".join(f"{k}: object map wins {v['agree']:.0%}, margin {v['margin']:+.2f}"
                        for k, v in out["random_model"].items())
        md += (f"\n\n{len(out['cases'])} cases ({', '.join(out['cases'])}); random-weight model "
               f"(4 cases): {rnd}. {out['seconds']} s.\n")
        (DOCS / "metaeval.md").write_text(md)
        print(md)
        return 0
    from verdict_eval import run_verdicts  # noqa: E402  (scripts/verdict_eval.py)

    out = run_verdicts(model, objs, cases)
    print(out)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3, suppress=True)
    sys.exit(main())
