"""Cost of the extra methods: every cheap one-pass method (``xai.ALL_ONE_PASS``) at
first/middle/last against the mission's 4-method gallery, each method's own map time, and
batched Score-CAM against pytorch-grad-cam's ScoreCAM per map.

    python -m bench.methods_cost [--models resnet50 efficientnet_lite0] [--repeats 7]

Writes bench/results/methods_cost.json. Timings are medians of interleaved runs after warm-up,
one torch thread (and the minimum, the robust figure on a shared machine); the gallery times
include bringing every map to the image's size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch

import xai
from xai.cams import ALL_ONE_PASS, DEFAULT_METHODS, METHODS

IMAGE = "examples/cat.png"


def _load(name: str) -> xai.LoadedModel:
    torch.manual_seed(0)
    return (xai.load_model(name) if name == "efficientnet_lite0"
            else xai.load_model(name, pretrained=False, device="cpu"))


def gallery_s(model, methods) -> float:
    t = time.perf_counter()
    r = xai.explain(model, IMAGE, methods=methods)
    for m in r.methods:
        for d in r.depths:
            r.cam(m, d)
    return time.perf_counter() - t


def per_method_ms(model) -> dict[str, float]:
    """Each one-pass method alone: its maps' time plus any extra gradient work (Finer-CAM's
    batched cotangent, ShapleyCAM's Hessian-vector products) over Grad-CAM's backward, run
    interleaved with it."""
    out = {}
    for name, m in METHODS.items():
        if m.perturbation:
            continue
        extra = []
        for _ in range(3):
            base = xai.explain(model, IMAGE, methods=["gradcam"]).timings["backward"]
            t = xai.explain(model, IMAGE, methods=[name]).timings
            extra.append(t["cams"] + (t["backward"] - base if m.gradient != "target" else 0.0))
        out[name] = round(1000 * statistics.median(extra), 2)
    return out


def score_cam(model, depth: str, top_k: int) -> dict:
    """Seconds per map: ours (batched, every target from the same forwards) vs pytorch-grad-cam
    ScoreCAM (batch 16, one object call per target). Ours runs once first to warm the batch
    shapes up, which pytorch-grad-cam's run (after ours) then also finds warm."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    xai.explain(model, IMAGE, methods=["scorecam"], depths=[depth])  # warm-up (batch shapes)
    t = time.perf_counter()
    r = xai.explain(model, IMAGE, methods=["scorecam"], depths=[depth], top_k=top_k)
    ours = (time.perf_counter() - t) / top_k
    layer = model.module.get_submodule(r.layers[depth].name)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam = pgc.ScoreCAM(model.module, [layer])
        cam(r.input, [ClassifierOutputTarget(r.targets[0].index)])
    ref = time.perf_counter() - t
    return {"depth": depth, "layer": r.layers[depth].name, "channels": r.layers[depth].shape[0],
            "top_k": top_k, "ours_s_per_map": round(ours, 3), "pgc_s_per_map": round(ref, 3),
            "speedup": round(ref / ours, 2), "masked_forwards": r.passes["masked_forward"]}


def score_floor(model, depth: str, batch: int = 16) -> dict:
    """The floor of any Score-CAM map: C forwards of the input at its full size (one per
    channel), batched as ours; in channels-last (ours on a CPU) and NCHW (pytorch-grad-cam)."""
    r = xai.explain(model, IMAGE, methods=["eigencam"], depths=[depth])
    c = r.layers[depth].shape[0]
    out = {"channels": c}
    for fmt, key in ((torch.channels_last, "floor_nhwc_s"), (torch.contiguous_format,
                                                             "floor_nchw_s")):
        x = r.input.expand(batch, -1, -1, -1).contiguous(memory_format=fmt)
        with torch.inference_mode():
            model.module(x)  # warm-up
            t = time.perf_counter()
            for _ in range(-(-c // batch)):
                model.module(x)
        out[key] = round(time.perf_counter() - t, 3)
    return out


def ablation_shared(model, depth: str) -> dict:
    """Ablation-CAM's C ablated copies of one image: sharing the network before the layer
    (ours) against running every copy whole (pytorch-grad-cam's way), one target."""
    from xai.cams.ablationcam import ablated_scores
    from xai.models import class_logits

    r = xai.explain(model, IMAGE, methods=["eigencam"], depths=[depth])
    info, x, cls = r.layers[depth], r.input, [r.targets[0].index]
    with torch.inference_mode():
        ref = class_logits(model.module(x))[0, cls]
    out = {"depth": depth, "layer": info.name, "channels": info.shape[0]}
    for key, kw in (("shared_s", {"reference": ref}), ("whole_s", {})):
        t = time.perf_counter()
        scores, _ = ablated_scores(model.module, x, info.name, info.fmt, info.shape[0], cls, **kw)
        out[key] = round(time.perf_counter() - t, 3)
        out.setdefault("scores", scores)
    out["max_abs_diff"] = float((out.pop("scores") - scores).abs().max())
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_lite0"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--score-depths", nargs="*", default=["middle"], help="none: skip")
    p.add_argument("--out", default="bench/results/methods_cost.json")
    p.add_argument("--ablation-depths", nargs="*", default=["last"])
    p.add_argument("--top-ks", nargs="+", type=int, default=[1, 3], help="with --score-only")
    p.add_argument("--score-only", action="store_true",
                   help="only Score-CAM: ours, pytorch-grad-cam's and the floor (C forwards)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for name in a.models:
        model = _load(name)
        if a.score_only:
            rows = []
            for d in a.score_depths:
                floor = score_floor(model, d)
                rows += [dict(score_cam(model, d, k), **floor) for k in a.top_ks]
            results[name] = {"score_cam": rows, "ablation_cam": [
                ablation_shared(model, d) for d in a.ablation_depths]}
            print(name, json.dumps(results[name]), flush=True)
            continue
        for methods in (DEFAULT_METHODS, ALL_ONE_PASS):
            gallery_s(model, methods)  # warm-up
        four, every = [], []
        for _ in range(a.repeats):
            four.append(gallery_s(model, DEFAULT_METHODS))
            every.append(gallery_s(model, ALL_ONE_PASS))
        f, e = statistics.median(four), statistics.median(every)
        row = {"four_ms": round(1000 * f, 1), "all_one_pass_ms": round(1000 * e, 1),
               "overhead_pct": round(100 * (e / f - 1), 1),
               "four_min_ms": round(1000 * min(four), 1),
               "all_one_pass_min_ms": round(1000 * min(every), 1),
               "overhead_min_pct": round(100 * (min(every) / min(four) - 1), 1),
               "all_one_pass": list(ALL_ONE_PASS),
               "per_method_ms": per_method_ms(model),
               "score_cam": [score_cam(model, d, k) for d in a.score_depths for k in (1, 3)]}
        results[name] = row
        print(name, json.dumps(row), flush=True)
    with open(a.out, "w") as fh:
        json.dump({"threads": 1, "torch": torch.__version__, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
