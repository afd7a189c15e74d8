"""Which methods find the right object when there are two: skimage.data pictures side by side.

    python scripts/two_object_pointing.py [--out bench/results/two_object_pointing.json]

Each picture is centre-cropped square, and every ordered pair is pasted left | right on a white
448x448 canvas (224 px each, letterboxed as examples/cat_and_coffee.png). For each object the
target is EfficientNet-Lite0's top-1 class on that picture alone; a method *hits* when its
map's maximum lies in that object's half, and *mass* is the share of the map inside it.
The cheap one-pass methods at first/middle/last and the fused rows; ShapleyCAM, KPCA-CAM and
FullGrad at the last stage only; Score-CAM at the last stage with ``--score-cam`` (on the first
``--score-pairs`` composites; about 900 masked forwards each at EfficientNet-Lite0's last stage,
a minute per composite on 2 shared cores); Ablation-CAM is left out (1280 ablated forwards each).
Results are rewritten after every composite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import xai  # noqa: E402
from xai.cams import METHODS  # noqa: E402

PICTURES = ("chelsea", "coffee", "rocket", "stereo_motorcycle", "astronaut")
SIDE = 224
LAST_ONLY = ["shapleycam", "kpcacam", "fullgrad"]
ONE_PASS = [n for n, m in METHODS.items() if not m.perturbation and n not in LAST_ONLY]


def picture(name: str) -> Image.Image:
    img = getattr(skimage.data, name)()
    img = img[0] if isinstance(img, tuple) else img
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return Image.fromarray(img[top:top + s, left:left + s, :3]).resize((SIDE, SIDE),
                                                                       Image.BILINEAR)


def composite(left: Image.Image, right: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (2 * SIDE, 2 * SIDE), "white")
    canvas.paste(left, (0, SIDE // 2))
    canvas.paste(right, (SIDE, SIDE // 2))
    return canvas


def score(heat: np.ndarray, side: int) -> tuple[bool, float]:
    """(hit, mass) of the object in half ``side`` (0 left, 1 right) of a 2S x 2S map."""
    h, w = heat.shape
    box = np.zeros_like(heat, dtype=bool)
    box[h // 4: 3 * h // 4, side * w // 2:(side + 1) * w // 2] = True
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    return bool(box[y, x]), float(heat[box].sum() / (heat.sum() + 1e-12))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="bench/results/two_object_pointing.json")
    p.add_argument("--score-cam", action="store_true")
    p.add_argument("--score-pairs", type=int, default=12)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    model = xai.load_model()
    pics = {n: picture(n) for n in PICTURES}
    top1 = {n: xai.predict(model, img, k=1, fit="full")[0] for n, img in pics.items()}
    keep = [n for n in PICTURES if top1[n].probability >= 0.2]
    print({n: (top1[n].label, round(top1[n].probability, 2)) for n in PICTURES}, flush=True)
    rows: dict[str, dict[str, list]] = {}
    for k, (left, right) in enumerate(itertools.permutations(keep, 2)):
        img = composite(pics[left], pics[right])
        targets = [top1[left].index, top1[right].index]
        last = LAST_ONLY + (["scorecam"] if a.score_cam and k < a.score_pairs else [])
        runs = [xai.explain(model, img, methods=ONE_PASS, targets=targets, fit="full"),
                xai.explain(model, img, methods=last, depths=["last"], targets=targets,
                            fit="full")]
        for side, tgt in enumerate(targets):
            found = {f"{m}@{d}": r.cam(m, d, tgt) for r in runs for m in r.methods
                     for d in r.depths}
            found.update({kind: xai.fused_map(runs[0], kind, tgt) for kind in xai.FUSIONS})
            for key, heat in found.items():
                hit, mass = score(heat, side)
                rows.setdefault(key, {"hit": [], "mass": []})
                rows[key]["hit"].append(hit)
                rows[key]["mass"].append(mass)
        print(left, right, flush=True)
        write(a.out, {n: top1[n].label for n in keep}, rows)


def write(out: str, objects: dict, rows: dict) -> None:
    table = {k: {"pointing": round(float(np.mean(v["hit"])), 3),
                 "mass": round(float(np.mean(v["mass"])), 3), "n": len(v["hit"])}
             for k, v in rows.items()}
    table = dict(sorted(table.items(), key=lambda kv: (-kv[1]["pointing"], -kv[1]["mass"])))
    Path(out).write_text(json.dumps({"objects": objects, "results": table}, indent=1))
    Path(out).with_suffix(".md").write_text(
        "| method@depth | pointing ↑ | mass in box ↑ | trials |\n|---|---:|---:|---:|\n"
        + "".join(f"| {k} | {v['pointing']:.3f} | {v['mass']:.3f} | {v['n']} |\n"
                  for k, v in table.items()))


if __name__ == "__main__":
    main()
