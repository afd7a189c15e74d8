"""One evaluation table over every registered method and both fusions, x first/middle/last.

* Pointing game: two objects side by side (every ordered pair of the five labelled images of
  ``scripts/evaluate.py``); the map for object A must peak on A's half.
* Faithfulness: the protocol the verdicts use (:data:`xai.verdict.PROTOCOL`: 16-px cells, mean
  fill, 16 steps, ``LeRF - MoRF`` of the target logit, :func:`xai.perturbation.removal_curves`),
  every panel and the fused maps in one call per image with the verdicts' baselines (random, 2
  draws; smooth random, 3 draws; Sobel edges); "beats" = the paired 90 % bootstrap interval of
  (panel - baseline) lies above 0 for all three (as :func:`xai.verdict.judge`).
* Sanity: each panel's own cascading-randomisation rho (:mod:`xai.sanity`), at the step where
  its own stage is random, never averaged over depths (mean over images per panel). A fused map
  is judged at the last step (every fused depth's stage random), the cascade replayed with the
  same seed.

The perturbation methods (Score-CAM, Ablation-CAM) cost 1 336 masked forwards per image on
EfficientNet-Lite0 (1 280 at the last stage), so they run on ``--costly-images`` images and
``--costly-sheets`` sheets only (the table says how many).

    python scripts/evaluate_all.py   # writes docs/evaluation_all.{json,md}
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from evaluate import objects  # noqa: E402

import xai  # noqa: E402
from xai.cams import METHODS, get_method, method_names  # noqa: E402
from xai.cams.fusion import FUSIONS, fused_map  # noqa: E402
from xai.faithfulness import random_map, sobel_map  # noqa: E402
from xai.metaeval import composite  # noqa: E402
from xai.metaeval import peak_in_half as hit  # noqa: E402
from xai.passes import MapKey, run_pass  # noqa: E402
from xai.perturbation import bootstrap, removal_curves  # noqa: E402
from xai.postprocess import resize_map  # noqa: E402
from xai.sanity import randomisation_units, sanity_check, spearman  # noqa: E402
from xai.targets import ClassTarget  # noqa: E402
from xai.verdict import BASELINES, N_RANDOM, PROTOCOL  # noqa: E402

DEPTHS = xai.DEFAULT_DEPTHS
ALL = method_names("every")
COSTLY = [m for m in ALL if METHODS[m].perturbation and m != "fullgrad"]
CHEAP = [m for m in ALL if m not in COSTLY]
FUSED = "first+middle+last"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def panel_keys(methods: list[str]) -> list[tuple[str, str]]:
    return [(m, d) for m in methods for d in DEPTHS] + [(f, FUSED) for f in FUSIONS]


def panel_map(r, m: str, d: str, cls: int, size) -> np.ndarray:
    return fused_map(r, m, cls, size) if d == FUSED else r.cam(m, d, cls, size=size)


def faithfulness(model, r, cls: int, keys: list) -> dict:
    """{(method, depth): (score, beats all three baselines)} and the baselines' scores."""
    size = tuple(r.input.shape[-2:])
    maps = [torch.from_numpy(panel_map(r, m, d, cls, size)) for m, d in keys]
    grid = min((r.layer(d).shape[1:] for d in r.depths), key=lambda s: s[0] * s[1])
    maps += [random_map(size, k) for k in range(N_RANDOM[0])]
    maps += [random_map(size, 100 + k, tuple(grid)) for k in range(N_RANDOM[1])]
    maps.append(sobel_map(r.input))
    p = PROTOCOL
    curves = removal_curves(model, r.input, torch.stack(maps), cls, patch=p["patch"],
                            fill=p["fill"], n_steps=p["n_steps"])
    vals = curves.step_values(p["score"], p["readout"])
    n, (a, b) = len(keys), N_RANDOM
    vals = np.concatenate([vals[:n], vals[n:n + a].mean(0, keepdims=True),
                           vals[n + a:n + a + b].mean(0, keepdims=True), vals[n + a + b:]])
    w = curves.weights()
    scores = vals @ w
    dlow, _ = bootstrap(vals[:n, None] - vals[None, n:], w)
    out = {k: (float(scores[i]), bool((dlow[i] > 0).all())) for i, k in enumerate(keys)}
    out.update({(base, "—"): (float(scores[n + j]), None) for j, base in enumerate(BASELINES)})
    return out


def reinit(module: torch.nn.Module) -> None:
    """As :mod:`xai.sanity`'s cascade re-initialises a unit (same order, same seed)."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
    else:
        for p in module.parameters(recurse=False):
            torch.nn.init.normal_(p, std=0.02)
    if hasattr(module, "reset_running_stats"):
        module.reset_running_stats()


def fused_sanity(model, r, cls: int, n_steps: int, seed: int = 0) -> dict[str, float | None]:
    """Spearman rho of each fused map with the fused map of the randomised model, once every
    fused depth's stage is random (the cascade's last step)."""
    module = copy.deepcopy(model.module)
    replica = dataclasses.replace(model, module=module, lock=threading.RLock())
    by_name = dict(module.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _, names in randomisation_units(model)[:n_steps]:
            for name in names:
                reinit(by_name[name])
    bases = sorted({FUSIONS[f][0] for f in FUSIONS})
    layers = [r.layer(d) for d in DEPTHS]
    with torch.inference_mode(False):
        run = run_pass(replica, replica.place(r.input), layers,
                       [get_method(m) for m in bases], [ClassTarget(cls)])
    size = tuple(r.input.shape[-2:])
    out = {}
    for f, (base, how) in FUSIONS.items():
        maps = np.stack([resize_map(run.maps[MapKey(base, info.name, 0, cls)], size).numpy()
                         for info in layers])
        new = maps.mean(0) if how == "mean" else maps.prod(0)
        out[f] = spearman(fused_map(r, f, cls, size), new)
    return out


def sanity(model, r, cls: int, methods: list[str], costly: bool) -> dict:
    """{(method, depth): own-stage rho}; the costly methods' last stage on a 2-step cascade."""
    out = {}
    runs = ([(DEPTHS[:-1], None), (DEPTHS[-1:], None)] if costly else [(DEPTHS, None)])
    for depths, cap in runs:
        rep = sanity_check(model, r, cls, methods=methods, depths=list(depths), max_steps=cap)
        for m, v in rep.verdicts.items():
            out.update({(m, d): p["rho"] for d, p in v["panels"].items()})
        steps = len(rep.steps)
    if not costly:
        out.update({(f, FUSED): v for f, v in fused_sanity(model, r, cls, steps).items()})
    return out


def save_partial(path: Path | None, **parts: dict) -> None:
    """Everything measured so far (a long run killed half-way still leaves its numbers)."""
    if path is not None:
        path.write_text(json.dumps({n: {"|".join(k) if isinstance(k, tuple) else k: v
                                        for k, v in d.items()} for n, d in parts.items()}))


def load_partial(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text())
    return {n: {tuple(k.split("|")) if "|" in k else k: v for k, v in d.items()}
            for n, d in data.items()}


def per_image(model, objs, costly_images: int, partial: Path | None = None
              ) -> tuple[dict, dict, dict]:
    faith: dict = {}
    rho: dict = {}
    secs: dict = {}
    for k, (name, (img, cls)) in enumerate(objs.items()):
        t0 = time.perf_counter()
        methods = ALL if k < costly_images else CHEAP
        r = xai.explain(model, img, methods, DEPTHS, targets=cls)
        t1 = time.perf_counter()
        for key, v in faithfulness(model, r, cls, panel_keys(methods)).items():
            faith.setdefault(key, []).append(v)
        t2 = time.perf_counter()
        for key, v in sanity(model, r, cls, CHEAP, False).items():
            rho.setdefault(key, []).append(v)
        if k < costly_images:
            for key, v in sanity(model, r, cls, COSTLY, True).items():
                rho.setdefault(key, []).append(v)
        secs[name] = {"maps": t1 - t0, "faithfulness": t2 - t1,
                      "sanity": time.perf_counter() - t2}
        log(f"{name}: maps {t1 - t0:.0f} s, faithfulness {t2 - t1:.0f} s, sanity "
            f"{time.perf_counter() - t2:.0f} s")
        save_partial(partial, faith=faith, rho=rho, secs=secs)
    return faith, rho, secs


def faithfulness_only(model, objs, costly_images: int) -> dict:
    """The faithfulness column again (a new protocol), every other number kept."""
    faith: dict = {}
    for k, (name, (img, cls)) in enumerate(objs.items()):
        t0 = time.perf_counter()
        methods = ALL if k < costly_images else CHEAP
        r = xai.explain(model, img, methods, DEPTHS, targets=cls)
        for key, v in faithfulness(model, r, cls, panel_keys(methods)).items():
            faith.setdefault(key, []).append(v)
        log(f"{name}: faithfulness again, {time.perf_counter() - t0:.0f} s")
    return faith


def pointing(model, objs, costly_sheets: int, partial: Path | None = None,
             done: dict | None = None) -> dict:
    hits: dict = {}
    for k, (a, b) in enumerate(itertools.permutations(objs, 2)):
        t0 = time.perf_counter()
        (ia, ca), (ib, cb) = objs[a], objs[b]
        methods = ALL if k < costly_sheets else CHEAP
        r = xai.explain(model, composite(ia, ib), methods, DEPTHS, targets=[ca, cb],
                        fit="full")
        size = r.image.shape[:2]
        sobel = resize_map(sobel_map(r.input), size).numpy()
        for j, (cls, left) in enumerate(((ca, True), (cb, False))):
            for m, d in panel_keys(methods):
                hits.setdefault((m, d), []).append(bool(hit(panel_map(r, m, d, cls, size), left)))
            hits.setdefault(("random-cam", "—"), []).append(
                bool(hit(random_map(size, 2 * k + j, grid=(7, 7)).numpy(), left)))
            hits.setdefault(("sobel", "—"), []).append(bool(hit(sobel, left)))
        log(f"sheet {a}|{b}: {time.perf_counter() - t0:.0f} s")
        save_partial(partial, **(done or {}), hits=hits)
    return hits


def table(faith: dict, rho: dict, hits: dict) -> list[dict]:
    rows = []
    for m, d in panel_keys(ALL) + [(b, "—") for b in BASELINES] + [("random-cam", "—")]:
        row: dict = {"method": m, "depth": d}
        if (m, d) in hits:
            row.update(pointing=float(np.mean(hits[(m, d)])), trials=len(hits[(m, d)]))
        if (m, d) in faith:
            s = [v[0] for v in faith[(m, d)]]
            row.update(faithfulness=float(np.mean(s)), faithfulness_sd=float(np.std(s)),
                       images=len(s))
            if d != "—":
                row["beats_baselines"] = sum(v[1] for v in faith[(m, d)])
        if (m, d) in rho:
            v = [x for x in rho[(m, d)] if x is not None]
            row.update(sanity_rho=float(np.mean(v)) if v else None, sanity_images=len(v),
                       sanity_passes=sum(abs(x) < 0.5 for x in v))
        rows.append(row)
    return rows


def markdown(summary: dict) -> str:
    s = summary["settings"]
    head = ("| method | depth | pointing game ↑ (trials) | LeRF − MoRF ↑ (images) | "
            "beats random / smooth / edges | sanity ρ own stage ↓ (passes) |")
    lines = [head, "|---|---|---|---|---|---|"]
    for r in summary["table"]:
        pg = f"{r['pointing']:.0%} ({r['trials']})" if "pointing" in r else "—"
        fa = (f"{r['faithfulness']:+.3f} ± {r['faithfulness_sd']:.3f} ({r['images']})"
              if "faithfulness" in r else "—")
        beats = f"{r['beats_baselines']}/{r['images']}" if "beats_baselines" in r else "—"
        sa = ("—" if r.get("sanity_rho") is None else
              f"{r['sanity_rho']:+.2f} ({r['sanity_passes']}/{r['sanity_images']})")
        lines.append(f"| {r['method']} | {r['depth']} | {pg} | {fa} | {beats} | {sa} |")
    names = ", ".join(summary["images"])
    notes = [
        "",
        f"Model `{s['model']}` on {s['device']}, {s['images']} labelled images ({names}). "
        f"**Pointing game**: every ordered pair of the objects side by side on a white sheet "
        f"(fit full), both targets ({s['sheets']} sheets, {2 * s['sheets']} trials); a "
        "class-agnostic map (Eigen-CAM, KPCA-CAM, FEM, Sobel) is the same for both objects, so "
        "it scores at most 50 %. **Faithfulness**: the verdicts' protocol "
        f"({s['protocol']['patch']}-px cells, {s['protocol']['fill']} fill, "
        f"{s['protocol']['n_steps']} steps, LeRF − MoRF of the target logit, normalised by the "
        "largest logit change of the image's call; mean ± sd over images); *beats*: images on "
        "which the paired 90 % bootstrap interval over steps lies above 0 against all three "
        "baselines (random: 2 draws averaged; smooth random: a random CAM on the coarsest "
        "explained grid, 3 draws; edges: Sobel). **Sanity**: each panel's Spearman ρ at the "
        "cascade step where its own stage is re-initialised (MPRT), mean over images, never "
        "averaged over depths; passes: images "
        "with |ρ| < 0.5. Fused rows: the fused map at the last step (every stage random).",
        f"**Sampled less** (cost): Score-CAM and Ablation-CAM ({', '.join(COSTLY)}) run "
        f"{s['costly_forwards']} masked (ablated) copies per image here (1 280 at the last "
        "stage), so "
        f"their faithfulness and sanity use the first {s['costly_images']} image(s) and their "
        f"pointing game the first {s['costly_sheets']} sheets ({2 * s['costly_sheets']} "
        "trials); their last-stage sanity runs a 2-step cascade (head, last stage: its own "
        "stage). Every other row uses every image and sheet.",
        f"Run time {summary['timings']['total'] / 60:.0f} min on 2 shared CPU cores. "
        f"Reproduce: `{s['command']}`",
    ]
    return "\n".join(lines + notes) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--costly-images", type=int, default=1)
    p.add_argument("--costly-sheets", type=int, default=4)
    p.add_argument("--images", type=int, default=5, help="use the first N labelled images")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "evaluation_all")
    p.add_argument("--resume", action="store_true",
                   help="reuse the per-image numbers of OUT.partial.json; redo the pointing game")
    p.add_argument("--faithfulness-only", action="store_true",
                   help="redo only the faithfulness column (a new protocol); keep the pointing "
                        "game and the sanity numbers of OUT.partial.json")
    args = p.parse_args()
    t0 = time.perf_counter()
    model = xai.load_model()
    objs = dict(list(objects().items())[:args.images])
    partial = args.out.with_name(args.out.name + ".partial.json")
    if (args.resume or args.faithfulness_only) and partial.exists():  # an earlier run's numbers
        got = load_partial(partial)
        faith, rho, secs = got["faith"], got["rho"], got["secs"]
    else:
        faith, rho, secs = per_image(model, objs, args.costly_images, partial)
    if args.faithfulness_only:
        faith, hits = faithfulness_only(model, objs, args.costly_images), got["hits"]
        save_partial(partial, faith=faith, rho=rho, secs=secs, hits=hits)
    else:
        hits = pointing(model, objs, args.costly_sheets, partial,
                        {"faith": faith, "rho": rho, "secs": secs})
    summary = {
        "settings": {
            "model": model.name, "device": str(model.device), "images": len(objs),
            "sheets": len(objs) * (len(objs) - 1), "costly_images": args.costly_images,
            "costly_sheets": args.costly_sheets, "costly_forwards": 1336,
            "protocol": PROTOCOL, "baselines": list(BASELINES),
            "command": "python scripts/evaluate_all.py"
                       f" --costly-images {args.costly_images}"
                       f" --costly-sheets {args.costly_sheets}",
        },
        "images": {n: {"class": c, "label": model.labels[c]} for n, (_, c) in objs.items()},
        "methods": ALL, "fusions": list(FUSIONS),
        "table": table(faith, rho, hits),
        "seconds_per_image": secs,
        "timings": {"total": round(time.perf_counter() - t0, 1)
                    + sum(sum(v.values()) for v in secs.values())
                    * (args.resume or args.faithfulness_only)},
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    args.out.with_suffix(".md").write_text("# Evaluation: every method\n\n" + markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
