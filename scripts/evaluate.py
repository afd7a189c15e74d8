"""Quantitative evaluation of every method x depth on the bundled model (offline).

* Faithfulness: mean RISE deletion / insertion AUC (and, with ``--road``, pytorch-grad-cam's
  ROAD) over labelled single-object images: the shipped examples (cat: tabby 281, coffee:
  espresso 967, rocket: missile 657, ImageNet's nearest class) and two more scikit-image /
  scikit-learn sample images (motorcycle: moped 665, china: palace 698), each explained for its
  label; with the random, random-CAM and Sobel baselines.
* Pointing game: two objects side by side on a white square sheet (every ordered pair of the
  five, so each object appears on both sides); the map for object A must peak on A's half.
* Sanity check (model-parameter randomisation): mean rank correlation per method x depth.
* Embeddings: 1-nearest-neighbour object agreement of pooled embeddings per depth, over
  eight views of each of the five objects (crops, colour and geometry changes), and a plot.

    python scripts/evaluate.py --steps 25 --road   # writes docs/evaluation.{json,md,png}
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import xai  # noqa: E402
from xai.cams import method_names  # noqa: E402
from xai.embeddings import (  # noqa: E402
    embed_images,
    embedding_scatter,
    figure_image,
    nn_agreement,
    pooled_embeddings,
)
from xai.faithfulness import (  # noqa: E402
    BASELINES,
    ROAD_PERCENTILES,
    random_map,
    score_explanation,
    sobel_map,
)
from xai.metaeval import composite  # noqa: E402
from xai.metaeval import peak_in_half as hit  # noqa: E402
from xai.sanity import sanity_check  # noqa: E402

METHODS = xai.DEFAULT_METHODS  # --methods replaces it
DEPTHS = xai.DEFAULT_DEPTHS


def objects() -> dict[str, tuple[Image.Image, int]]:
    """name -> (image, ImageNet class index)."""
    out = {
        "cat": (Image.open(ROOT / "examples" / "cat.png").convert("RGB"), 281),
        "coffee": (Image.open(ROOT / "examples" / "coffee.png").convert("RGB"), 967),
        "rocket": (Image.open(ROOT / "examples" / "rocket.png").convert("RGB"), 657),
    }
    try:
        from skimage import data

        out["motorcycle"] = (Image.fromarray(data.stereo_motorcycle()[0]), 665)
    except Exception as exc:  # optional extra image
        print(f"skipping the motorcycle image: {exc}", file=sys.stderr)
    try:
        from sklearn.datasets import load_sample_image

        out["china"] = (Image.fromarray(load_sample_image("china.jpg")), 698)
    except Exception as exc:
        print(f"skipping the china image: {exc}", file=sys.stderr)
    return out



def faithfulness(model, objs, steps: int, road: bool, chunk: int) -> tuple[list, list, float]:
    tables, sanity = [], []
    t0 = time.perf_counter()
    for name, (img, cls) in objs.items():
        r = xai.explain(model, img, METHODS, DEPTHS, targets=cls)
        t = time.perf_counter()
        table = score_explanation(model, r, cls, n_steps=steps, chunk_size=chunk, road=road)
        print(f"{name}: p({r.targets[0].label}) = {r.targets[0].probability:.3f}, scored "
              f"{len(table.rows)} panels + {len(table.baselines)} baselines in "
              f"{time.perf_counter() - t:.1f} s ({table.forwards} images, {table.batches} "
              f"batches)", file=sys.stderr)
        tables.append(dict(table.to_dict(), image=name))
        rep = sanity_check(model, r, cls)
        sanity.append(dict(rep.to_dict(), image=name))
    return tables, sanity, time.perf_counter() - t0


def pointing_game(model, objs) -> tuple[dict, int, float]:
    t0 = time.perf_counter()
    hits: dict[str, list[bool]] = {}
    trials = 0
    for a, b in itertools.permutations(objs, 2):
        (ia, ca), (ib, cb) = objs[a], objs[b]
        r = xai.explain(model, composite(ia, ib), METHODS, DEPTHS, targets=[ca, cb], fit="full")
        size = r.image.shape[:2]
        sobel = xai.engine.resize_map(sobel_map(r.input), size).numpy()  # same for both targets
        for cls, left in ((ca, True), (cb, False)):
            trials += 1
            for m in METHODS:
                for d in DEPTHS:
                    hits.setdefault(f"{m}|{d}", []).append(hit(r.cam(m, d, cls), left))
            base = {"random-cam": random_map(size, trials, grid=(7, 7)).numpy(), "sobel": sobel}
            for k, cam in base.items():
                hits.setdefault(k, []).append(hit(cam, left))
    acc = {k: float(np.mean(v)) for k, v in hits.items()}
    return acc, trials, time.perf_counter() - t0


def variants(img: Image.Image) -> list[Image.Image]:
    """Eight views of one object: crops of different parts, colour and geometry changes."""
    from PIL import ImageEnhance, ImageFilter

    w, h = img.size
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + 85) % 256  # hue turned by a third
    return [img, ImageOps.mirror(img), ImageOps.grayscale(img).convert("RGB"),
            Image.fromarray(hsv, "HSV").convert("RGB"),
            img.crop((0, 0, int(w * .65), int(h * .65))),
            img.crop((int(w * .35), int(h * .35), w, h)),
            ImageEnhance.Contrast(img.filter(ImageFilter.GaussianBlur(3))).enhance(0.6),
            img.rotate(12, fillcolor=(255, 255, 255))]


def embeddings(model, objs, out_png: Path) -> dict:
    images, names, owners = [], [], []
    for name, (img, _) in objs.items():
        views = variants(img)
        images += views
        names += [name] + [""] * (len(views) - 1)
        owners += [name] * len(views)
    results = embed_images(model, images, DEPTHS, batch_size=10)
    agree = {d: nn_agreement(pooled_embeddings(results, d), owners) for d in DEPTHS}
    figure_image(embedding_scatter(results, names=names)).save(out_png)
    return {"images": len(images), "views_per_object": len(images) // len(objs),
            "nn_object_agreement": agree}


def aggregate(tables: list[dict], pointing: dict, sanity: list[dict]) -> list[dict]:
    rows = []
    keys = [(m, d) for m in METHODS for d in DEPTHS] + [(b, None) for b in BASELINES]
    for m, d in keys:
        picked = [r for t in tables for r in (t["rows"] if d else t["baselines"])
                  if r["method"] == m and r.get("depth") == d]
        row = {"method": m, "depth": d or "—", "images": len(picked)}
        for k in ("deletion_auc", "insertion_auc", "score", "road"):
            vals = [r[k] for r in picked if k in r]
            if vals:
                row[k] = round(float(np.mean(vals)), 4)
                row[k + "_sd"] = round(float(np.std(vals)), 4)
        if d:
            row["mean_rank"] = round(float(np.mean([r["rank"] for r in picked])), 2)
            row["beats_baselines"] = f"{sum(r['beats_baselines'] for r in picked)}/{len(picked)}"
            rho = [s["rank_correlation"][m][d] for s in sanity]
            step = sanity[0]["layer_step"][d]
            row["sanity_rho_head"] = round(float(np.mean([x[0] for x in rho])), 3)
            row["sanity_rho_own_stage"] = round(float(np.mean([x[step] for x in rho])), 3)
        key = f"{m}|{d}" if d else m
        if key in pointing:
            row["pointing_game"] = round(pointing[key], 4)
        rows.append(row)
    return rows


def markdown(summary: dict) -> str:
    road = any("road" in r for r in summary["table"])
    head = ("| method | depth | deletion ↓ | insertion ↑ | ins − del ↑ |"
            + (" ROAD ↑ |" if road else "") + " mean rank | beats all baselines | pointing game ↑ |"
            " sanity ρ: head | sanity ρ: own stage |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    def cell(r: dict, k: str, fmt: str = "{:.3f}") -> str:
        return fmt.format(r[k]) if k in r else "—"

    for r in summary["table"]:
        line = (f"| {r['method']} | {r['depth']} | {cell(r, 'deletion_auc')} | "
                f"{cell(r, 'insertion_auc')} | {cell(r, 'score', '{:+.3f}')} |")
        if road:
            line += f" {cell(r, 'road', '{:+.3f}')} |"
        line += (f" {cell(r, 'mean_rank', '{:.1f}')} | {r.get('beats_baselines', '—')} | "
                 f"{cell(r, 'pointing_game', '{:.0%}')} | "
                 f"{cell(r, 'sanity_rho_head', '{:+.2f}')} | "
                 f"{cell(r, 'sanity_rho_own_stage', '{:+.2f}')} |")
        lines.append(line)
    s = summary["settings"]
    verdicts = summary["sanity_verdicts"]
    emb = summary["embeddings"]["nn_object_agreement"]
    notes = [
        "",
        f"Model `{s['model']}` on {s['device']}; {s['images']} labelled images "
        f"({', '.join(summary['images'])}); RISE deletion/insertion with {s['n_steps']} steps "
        f"of {s['step_pixels']} pixels (deletion fills with the mean, insertion starts from a "
        "Gaussian blur, kernel 11, sigma 5), target probability by softmax, trapezoid AUC"
        + (f"; ROAD = (LeRF − MoRF)/2 at percentiles {s['road_percentiles']}" if road else "")
        + ". Baselines: a per-pixel random map, a random 7×7 map upsampled (random CAM), a "
        "Sobel edge map.",
        f"Pointing game: {summary['pointing_trials']} trials (every ordered pair of the "
        f"{s['images']} objects side by side, both targets); a class-agnostic map (Eigen-CAM, "
        "Sobel) is the same for both objects of a sheet, so it scores at most 50 %.",
        "Sanity: mean Spearman ρ between the map and the map after re-initialising the head "
        "only, and after re-initialising the head and every stage down to the layer's own "
        f"(cascading randomisation), averaged over the images. Per-image verdicts (a method "
        f"passes when the |ρ| of every depth at the layer's own stage is < "
        f"{summary['sanity_threshold']}): "
        + ", ".join(f"{m} {v}" for m, v in verdicts.items()) + ".",
        "Embeddings: leave-one-out 1-NN object agreement (cosine) of pooled embeddings over "
        f"{summary['embeddings']['views_per_object']} views of each object (crops, mirror, "
        "grey, hue turned, blur, rotation): "
        + ", ".join(f"{d} {v:.0%}" for d, v in emb.items() if v is not None) + ".",
        f"Scoring time: {s['seconds_per_image']:.1f} s per image for "
        f"{s['maps_per_image']} maps ({s['forwards_per_image']} images in "
        f"{s['batches_per_image']} batched forwards).",
        "",
        f"Reproduce: `{s['command']}`",
    ]
    return "\n".join(lines + notes) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=25, help="deletion/insertion steps")
    p.add_argument("--road", action="store_true", help="add ROAD (slow: sparse solves)")
    p.add_argument("--chunk", type=int, default=64, help="images per batched forward")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "evaluation")
    p.add_argument("--methods", nargs="+", default=list(xai.DEFAULT_METHODS),
                   help="registered names; 'all': every cheap one-pass method")
    args = p.parse_args()
    global METHODS
    METHODS = tuple(method_names(args.methods))
    t0 = time.perf_counter()
    model = xai.load_model()
    objs = objects()
    tables, sanity, t_faith = faithfulness(model, objs, args.steps, args.road, args.chunk)
    pointing, trials, t_point = pointing_game(model, objs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    emb = embeddings(model, objs, args.out.with_name(args.out.name + "_embeddings.png"))
    verdicts = {}
    for m in METHODS:
        v = [s["verdicts"][m]["verdict"] for s in sanity]
        verdicts[m] = f"passes on {v.count('passes')} of {len(v)} images"
    per_image = [t["timings"]["total"] for t in tables]
    hw = model.input_size[0] * model.input_size[1]
    summary = {
        "settings": {
            "model": model.name, "device": str(model.device), "images": len(objs),
            "n_steps": args.steps, "step_pixels": -(-hw // args.steps),
            "road_percentiles": list(ROAD_PERCENTILES) if args.road else None,
            "chunk_size": args.chunk, "seconds_per_image": float(np.mean(per_image)),
            "maps_per_image": len(tables[0]["rows"]) + len(tables[0]["baselines"]),
            "forwards_per_image": tables[0]["forwards"], "batches_per_image": tables[0]["batches"],
            "command": "python scripts/evaluate.py" + (f" --steps {args.steps}")
                       + (" --road" if args.road else "")
                       + ("" if METHODS == xai.DEFAULT_METHODS
                          else " --methods " + " ".join(args.methods)
                          + " --out " + os.path.relpath(args.out, ROOT)),
        },
        "images": {n: {"class": c, "label": model.labels[c]} for n, (_, c) in objs.items()},
        "table": aggregate(tables, pointing, sanity),
        "pointing_trials": trials,
        "sanity_threshold": sanity[0]["threshold"],
        "sanity_verdicts": verdicts,
        "embeddings": emb,
        "per_image": tables,
        "sanity": sanity,
        "timings": {"faithfulness_and_sanity": round(t_faith, 1),
                    "pointing_game": round(t_point, 1),
                    "total": round(time.perf_counter() - t0, 1)},
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    args.out.with_suffix(".md").write_text("# Evaluation\n\n" + markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
