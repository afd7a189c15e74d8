"""Parity of every method with pytorch-grad-cam 1.5.7's class on the same layer, and of both
with a float64 evaluation of our formulas (a float64 copy of the model through our pass).

    python -m bench.parity [--models efficientnet_lite0 vit_tiny_patch16_224] [--out FILE]

Differences are max |a - b| over maps in [0, 1] at the input's size. Eigen-CAM and
Eigen-Grad-CAM compare up to the arbitrary sign of pytorch-grad-cam's SVD. KPCA-CAM is skipped
on maps over 56x56 positions, Score-/Ablation-CAM on layers over 320 channels (minutes on a CPU).
"""

from __future__ import annotations

import argparse
import copy
import json
import warnings

import numpy as np
import pytorch_grad_cam as pgc
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch.nn.attention import SDPBackend, sdpa_kernel

import xai
from xai.cams import first_component_projection, get_method
from xai.layers import to_nchw
from xai.passes import run_pass
from xai.postprocess import normalise, resize_map
from xai.targets import ClassTarget

REFERENCE = {"gradcam": pgc.GradCAM, "gradcam++": pgc.GradCAMPlusPlus, "xgradcam": pgc.XGradCAM,
             "eigencam": pgc.EigenCAM, "hirescam": pgc.HiResCAM,
             "gradcam-elementwise": pgc.GradCAMElementWise, "layercam": pgc.LayerCAM,
             "eigengradcam": pgc.EigenGradCAM, "fem": pgc.FEM, "kpcacam": pgc.KPCA_CAM,
             "finercam": pgc.FinerCAM, "shapleycam": pgc.ShapleyCAM, "scorecam": pgc.ScoreCAM,
             "ablationcam": pgc.AblationCAM, "fullgrad": pgc.FullGrad}
SIGNLESS = {"eigencam", "eigengradcam"}


def reshape_for(info):
    """pytorch-grad-cam's reshape transform for a layer laid out as ours reads it."""
    if info.fmt == "NCHW":
        return None
    return lambda t: to_nchw(t, info)


def reference_map(model, info, method, x, target):
    cls = REFERENCE[method]
    layers = [model.module.get_submodule(info.name)]
    kwargs = {"reshape_transform": reshape_for(info)}
    if method == "ablationcam" and info.fmt == "NLC":
        from pytorch_grad_cam.ablation_layer import AblationLayerVit
        kwargs["ablation_layer"] = AblationLayerVit()
    cam = cls(model.module, [] if method == "fullgrad" else layers, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "shapleycam":  # fused attention kernels have no double backward
            with sdpa_kernel(SDPBackend.MATH):
                return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
        if method == "finercam":
            return cam(x, target_idx=target)[0]
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]


def ours(model, x, infos, methods, target, dtype=torch.float32):
    """{(method, layer): map at the input's size} from one pass of ``model`` in ``dtype``."""
    m = model if dtype == torch.float32 else copy.copy(model)
    if dtype != torch.float32:
        m.module = copy.deepcopy(model.module).to(dtype)
    run = run_pass(m, x.to(dtype), infos, [get_method(n) for n in methods],
                   [ClassTarget(target)])
    return {(k[0], k[1]): resize_map(v, model.input_size).numpy()
            for k, v in run.maps.items()}


def compare(model, image, methods, depths=("first", "middle", "last")):
    """Rows: method, depth, |ours - pgc|, |pgc - f64|, |ours - f64|."""
    r = xai.explain(model, image, methods=["gradcam"], depths=depths)
    target = r.targets[0].index
    x = r.input.to(model.device)
    rows = []
    for d in depths:
        info = r.layers[d]
        c, h, w = info.shape
        todo = [mm for mm in methods if not (mm == "kpcacam" and h * w > 3136
                                             or mm in ("scorecam", "ablationcam") and c > 320)]
        o32 = ours(model, x, [info], todo, target)
        o64 = ours(model, x, [info], todo, target, torch.float64)
        for mm in todo:
            try:
                ref = reference_map(model, info, mm, x, target)
            except (RuntimeError, ValueError) as e:  # pytorch-grad-cam cannot run it here
                rows.append({"method": mm, "depth": d, "layer": info.name,
                             "pgc_error": f"{type(e).__name__}: {str(e)[:80]}",
                             "ours_vs_f64": float(np.abs(o32[(mm, info.name)]
                                                         - o64[(mm, info.name)]).max())})
                print(rows[-1], flush=True)
                continue
            a, b = o32[(mm, info.name)], o64[(mm, info.name)]
            d_ref = np.abs(a - ref).max()
            d_ref64 = np.abs(ref - b).max()
            if mm in SIGNLESS:  # the arbitrary sign: compare with our flipped map too
                flip = _flip(model, x, info, mm, target)
                d_ref = min(d_ref, np.abs(flip - ref).max())
                d_ref64 = min(d_ref64, np.abs(flip - ref).max())  # up to sign, via float32
            rows.append({"method": mm, "depth": d, "layer": info.name,
                         "ours_vs_pgc": float(d_ref), "pgc_vs_f64": float(d_ref64),
                         "ours_vs_f64": float(np.abs(a - b).max())})
            print(rows[-1], flush=True)
    return rows


def _flip(model, x, info, method, target):
    run = run_pass(model, x, [info], [get_method("gradcam")], [ClassTarget(target)],
                   keep_activations=True)
    acts = run.activations[info.name]
    if method == "eigengradcam":
        grads = _grads(model, x, info, target)
        acts = grads * acts
    proj = -first_component_projection(acts)[0]
    return resize_map(normalise(proj.clamp(min=0)[None])[0], model.input_size).numpy()


def _grads(model, x, info, target):
    store = {}

    def hook(mod, args, out):
        store["a"] = out
    handle = model.module.get_submodule(info.name).register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = xai.models.class_logits(model.module(x))
            (g,) = torch.autograd.grad(logits[0, target], store["a"])
    finally:
        handle.remove()
    return to_nchw(g, info).float().cpu()


def markdown(out: dict) -> str:
    """One row per method: the worst depth per model, as ours/pgc, pgc/f64, ours/f64."""
    models = list(out)
    head = "| method | " + " | ".join(f"{m}: ours vs pgc · pgc vs f64 · ours vs f64"
                                       for m in models) + " |"
    lines = [head, "|---|" + "---:|" * len(models)]
    methods = list(dict.fromkeys(r["method"] for rows in out.values() for r in rows))
    for mm in methods:
        cells = []
        for name in models:
            rows = [r for r in out[name] if r["method"] == mm]
            if not rows:
                cells.append("—")
            elif any("pgc_error" in r for r in rows):
                cells.append(f"pgc fails · — · {max(r['ours_vs_f64'] for r in rows):.1e}")
            else:
                cells.append(" · ".join(f"{max(r[k] for r in rows):.1e}"
                                        for k in ("ours_vs_pgc", "pgc_vs_f64", "ours_vs_f64")))
        lines.append(f"| {mm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["efficientnet_lite0", "vit_tiny_patch16_224"])
    p.add_argument("--methods", nargs="+", default=list(REFERENCE))
    p.add_argument("--image", default="examples/cat.png")
    p.add_argument("--out", default="bench/results/parity.json")
    p.add_argument("--markdown", action="store_true", help="print the table of --out only")
    a = p.parse_args(argv)
    if a.markdown:
        with open(a.out) as f:
            print(markdown(json.load(f)))
        return
    torch.manual_seed(0)
    out = {}
    for name in a.models:
        model = (xai.load_model(name) if name == "efficientnet_lite0"
                 else xai.load_model(name, pretrained=False, device="cpu"))
        out[name] = compare(model, a.image, a.methods)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
