"""Which map to believe: meta-evaluate the perturbation protocols, then test the verdicts.

    python scripts/evaluate_verdicts.py meta      # docs/metaeval.{json,md} (44 min, 2 shared cores)
    python scripts/evaluate_verdicts.py meta --hard  # docs/metaeval_hard.{json,md}: small objects
    python scripts/evaluate_verdicts.py verdicts  # docs/verdicts.{json,md}   (~10 min)

*meta*: every protocol variant (pixel / 16-px patch x mean / blur / ROAD fill x MoRF / LeRF /
LeRF-MoRF x 16 / 8 steps) on the known-answer set (:mod:`xai.metaeval`): two-object composites
of scikit-image pictures, the target on either side; plus the chosen protocol on a random-weight
model. ``--hard``: the same on small objects (a tenth of the picture each), apart or touching,
on scikit-image's grass texture (:func:`xai.metaeval.hard_scene`). *verdicts*: the full
verdict (:mod:`xai.verdict`) on every two-object case (does the panel marked best point at the
target's half?), its seed rank correlation over the 12 panels, and the cat example.
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
import xai.sanity  # noqa: E402
from xai import metaeval  # noqa: E402
from xai.verdict import PROTOCOL  # noqa: E402

DOCS = ROOT / "docs"
OBJECTS: dict[str, Image.Image] = {}
PAIRS = [("cat", "coffee"), ("rocket", "cat"), ("coffee", "motorcycle"), ("motorcycle", "rocket"),
         ("coffee", "rocket")]  # each object on both sides; 10 cases (both targets per sheet)
CHOSEN = {"patch": PROTOCOL["patch"], "fill": PROTOCOL["fill"], "score": PROTOCOL["score"],
          "steps": PROTOCOL["n_steps"]}  # what the verdicts use


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
    p.add_argument("--hard", action="store_true", help="meta: the small-object set")
    p.add_argument("--markdown-only", action="store_true",
                   help="rewrite the .md from the .json (the chosen protocol marked anew)")
    args = p.parse_args()
    if args.markdown_only:
        write_markdown(args.what, args.hard)
        return 0
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model = xai.load_model("efficientnet_lite0")
    objs = objects(model)
    OBJECTS.update({k: img for k, (img, _) in objs.items()})
    DOCS.mkdir(exist_ok=True)
    if args.what == "meta" and args.hard:
        from skimage import data

        grass = Image.fromarray(data.grass()).convert("RGB")
        cases = metaeval.build_hard_cases(model, objs, PAIRS[:4], grass)
    else:
        cases = metaeval.build_cases(model, objs, PAIRS)
    stem = "metaeval_hard" if args.hard else "metaeval"
    if args.what == "meta":
        out = meta(model, cases)
        (DOCS / f"{stem}.json").write_text(json.dumps(out, indent=1, default=_plain))
        print(write_markdown("meta", args.hard))
        return 0
    out = verdicts(model, cases)
    (DOCS / "verdicts.json").write_text(json.dumps(out, indent=1, default=_plain))
    md = verdicts_markdown(out)
    (DOCS / "verdicts.md").write_text(md)
    print(md)
    return 0


def meta_markdown(out: dict) -> str:
    md = metaeval.markdown(out["rows"], out["chosen"])
    rnd = "; ".join(f"{k}: object map wins {v['agree']:.0%}, margin {v['margin']:+.2f}"
                    for k, v in out["random_model"].items())
    return md + (f"\n\n{len(out['cases'])} cases ({', '.join(out['cases'])}); random-weight "
                 f"model (4 cases): {rnd}. {out['seconds']} s.\n")


def write_markdown(what: str, hard: bool) -> str:
    """docs/<stem>.md from docs/<stem>.json; the chosen protocol is today's."""
    stem = "verdicts" if what == "verdicts" else "metaeval_hard" if hard else "metaeval"
    out = json.loads((DOCS / f"{stem}.json").read_text())
    if what == "meta":
        c = CHOSEN
        out["chosen"] = metaeval.variant_name(c["patch"], c["fill"], c["score"], c["steps"])
    md = meta_markdown(out) if what == "meta" else verdicts_markdown(out)
    (DOCS / f"{stem}.md").write_text(md)
    return md


def _plain(o):
    """numpy scalars as Python numbers for JSON."""
    return o.item() if hasattr(o, "item") else str(o)


def one_case(model, r, case, stability: bool) -> dict:
    """Sanity + verdict of one target of a sheet; a second seed and 8 steps for stability."""
    from xai.sanity import sanity_check
    from xai.verdict import judge

    t = time.perf_counter()
    rep = sanity_check(model, r, case.target)
    v = judge(model, r, case.target, sanity=rep)
    seconds = time.perf_counter() - t
    again = judge(model, r, case.target, sanity=rep, seed=1) if stability else v
    fewer = judge(model, r, case.target, sanity=rep, n_steps=8) if stability else v
    top = max(v.panels, key=lambda p: p.score)
    hit = lambda p: p is not None and metaeval.peak_in_half(r.cam(p.method, p.depth, case.target),  # noqa
                                                 case.left)
    scores = lambda rep: np.array([p.score for p in rep.panels])  # noqa: E731
    rho = lambda a, b: xai.sanity.spearman(torch.tensor(a), torch.tensor(b))  # noqa: E731
    return {"case": case.name, "best": f"{v.best.method} @ {v.best.depth}" if v.best else None,
            "best_hits": hit(v.best), "top": f"{top.method} @ {top.depth}",
            "top_hits": hit(top), "seed_rho": rho(scores(v), scores(again)),
            "steps_rho": rho(scores(v), scores(fewer)), "stability": stability,
            "seconds": round(seconds, 1),
            "faithfulness_s": round(v.timings["faithfulness"], 1), "summary": v.summary,
            "panels": [{"panel": f"{p.method} @ {p.depth}", "score": p.score,
                        "faithful": p.faithful, "class_sensitive": p.class_sensitive,
                        "model_sensitive": p.model_sensitive, "stable": p.stable,
                        "sanity_rho": p.sanity_rho, "max_sensitivity": p.max_sensitivity,
                        "points": hit(p), "badge": p.badge} for p in v.panels],
            "baselines": v.baselines}


def panel_table(rows: list[dict]) -> str:
    """Per panel over every case: mean score and how often each check holds."""
    names = [p["panel"] for p in rows[0]["panels"]]
    lines = ["| panel | LeRF−MoRF ↑ | faithful | class-sensitive | passes sanity | stable | "
             "points at target | marked best |", "|---" * 8 + "|"]
    n = len(rows)
    for i, name in enumerate(names):
        ps = [r["panels"][i] for r in rows]
        c = lambda k, ps=ps: f"{sum(bool(p[k]) for p in ps)}/{n}"  # noqa: E731
        lines.append(f"| {name} | {np.mean([p['score'] for p in ps]):+.2f} | {c('faithful')} | "
                     f"{c('class_sensitive')} | {c('model_sensitive')} | {c('stable')} | "
                     f"{c('points')} | {sum(r['best'] == name for r in rows)}/{n} |")
    for j, b in enumerate(rows[0]["baselines"]):
        lines.append(f"| baseline: {b['name']} | "
                     f"{np.mean([r['baselines'][j]['score'] for r in rows]):+.2f} | — | — | — | — "
                     "| — | — |")
    return "\n".join(lines)


def verdicts(model, cases) -> dict:
    rows, last = [], None
    for case in cases:
        key = case.name.split("→")[0]
        if key != last:
            a, b = key.split("|")
            sheet = metaeval.composite(*(OBJECTS[k] for k in (a, b)))
            r = xai.explain(model, sheet, xai.DEFAULT_METHODS, xai.DEFAULT_DEPTHS,
                            targets=[c.target for c in cases if c.name.startswith(key)],
                            fit="full")
            last = key
        rows.append(one_case(model, r, case, stability=len(rows) < 2))
        (DOCS / "verdicts_partial.json").write_text(json.dumps(rows, default=_plain))  # safety
        print(rows[-1]["case"], rows[-1]["best"], rows[-1]["best_hits"], file=sys.stderr)
    cat = xai.explain(model, ROOT / "examples" / "cat.png", xai.DEFAULT_METHODS,
                      xai.DEFAULT_DEPTHS)
    from xai.sanity import sanity_check
    from xai.verdict import judge

    rep = judge(model, cat, sanity=sanity_check(model, cat))
    return {"rows": rows, "cat": rep.to_dict(), "cat_markdown": rep.markdown()}


def verdicts_markdown(out: dict) -> str:
    rows = out["rows"]
    stab = lambda r, k: f"{r[k]:.2f}" if r["stability"] else "—"  # noqa: E731
    st = [r for r in rows if r["stability"]]
    lines = ["| case (sheet → target) | best (verdict) | points at target | top score, no "
             "checks | points at target | seed ρ | 16 vs 8 steps ρ |", "|---" * 7 + "|"]
    for r in rows:
        case = r["case"].replace("|", " + ").replace("→", " → ")
        badge = next((p["badge"] for p in r["panels"] if p["panel"] == r["best"]), "")
        best = f"{r['best']} ({badge})" if r["best"] else "none"
        lines.append(f"| {case} | {best} | {'yes' if r['best_hits'] else 'no'}"
                     f" | {r['top']} | {'yes' if r['top_hits'] else 'no'} | {stab(r, 'seed_rho')} |"
                     f" {stab(r, 'steps_rho')} |")
    n = len(rows)
    lines.append(f"\nBest panel points at the target in {sum(r['best_hits'] for r in rows)}/{n}"
                 f" cases (top score without the checks: {sum(r['top_hits'] for r in rows)}/{n});"
                 f" mean seed ρ {np.mean([r['seed_rho'] for r in st]):.2f}, mean 16 vs 8 steps"
                 f" ρ {np.mean([r['steps_rho'] for r in st]):.2f} ({len(st)} cases); verdict "
                 f"(sanity + judge) "
                 f"{np.median([r['seconds'] for r in rows]):.1f} s median, faithfulness "
                 f"{np.median([r['faithfulness_s'] for r in rows]):.1f} s median.\n")
    lines.append("\nPer panel over the cases:\n\n" + panel_table(rows))
    lines.append("\nCat example (examples/cat.png, top-1):\n\n" + out["cat_markdown"])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    np.set_printoptions(precision=3, suppress=True)
    sys.exit(main())
