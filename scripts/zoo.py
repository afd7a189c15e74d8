"""Explain one small model per timm family, every torchvision classifier and a transformers set.

Random weights (``pretrained=False``), the model's own input size, the cat example, the default
``stages`` mode. For each model it records the three layers with their shapes, the time and
the result, and checks what the library promises: three distinct layers, in depth order, whose
resolution does not grow with depth, and finite maps in [0, 1]. Headless backbones must be
refused with :class:`xai.HeadlessModelError`.

    python scripts/zoo.py                       # all zoos -> docs/zoo.md, docs/zoo.json
    python scripts/zoo.py --zoo torchvision --only vgg16,swin_t
    python scripts/zoo.py --list                # which models would run

Results are appended to the JSON as they come, so an interrupted run resumes (``--fresh``
starts again).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import xai  # noqa: E402
from xai.zoo import (  # noqa: E402
    TRANSFORMERS_SET,
    check_explanation,
    smallest_per_timm_family,
    torchvision_classifiers,  # noqa: E402
)

CAT = ROOT / "examples" / "cat.png"


def timm_plan(cache: Path) -> dict[str, str]:
    """family -> model, from ``cache`` when it was made with this timm version."""
    import timm

    if cache.exists():
        saved = json.loads(cache.read_text())
        if saved.get("timm") == timm.__version__:
            return saved["families"]
    families = smallest_per_timm_family()
    cache.write_text(json.dumps({"timm": timm.__version__, "families": families}, indent=1))
    return families


def plan(zoos: list[str], cache: Path) -> list[tuple[str, str, str]]:
    """(zoo, family, model name) for every model to run."""
    rows: list[tuple[str, str, str]] = []
    if "timm" in zoos:
        rows += [("timm", fam, name) for fam, name in timm_plan(cache).items()]
    if "torchvision" in zoos:
        rows += [("torchvision", name, f"torchvision/{name}") for name in torchvision_classifiers()]
    if "transformers" in zoos:
        rows += [("transformers", cfg, f"hf:{cfg}") for cfg in TRANSFORMERS_SET]
    return rows


def run_one(name: str) -> dict:
    """Load ``name`` with random weights, explain the cat, check the layers and maps."""
    t0 = time.perf_counter()
    torch.manual_seed(0)
    try:
        model = xai.load_model(name, pretrained=False, device="cpu")
    except xai.HeadlessModelError as exc:
        return {"result": "refused", "message": str(exc), "seconds": time.perf_counter() - t0}
    try:
        r = xai.explain(model, CAT)
        problems = check_explanation(model, r)
        layers = {d: {"name": i.name, "shape": list(i.shape), "position": i.position}
                  for d, i in r.layers.items()}
        return {"result": "ok" if not problems else "wrong", "problems": problems,
                "layers": layers, "input_size": list(model.input_size),
                "stages": len(xai.stage_layers(model)), "seconds": time.perf_counter() - t0}
    finally:
        del model
        gc.collect()


def markdown(results: dict[str, dict]) -> str:
    """The zoo table as markdown, with a summary line per zoo."""
    lines = ["# The model zoo", "",
             "Made by `python scripts/zoo.py` (random weights, each model's own input size, "
             "the cat example, `mode=\"stages\"`).", ""]
    for zoo in ("timm", "torchvision", "transformers"):
        rows = {k: v for k, v in results.items() if v["zoo"] == zoo}
        if not rows:
            continue
        ok = sum(v["result"] == "ok" for v in rows.values())
        refused = sum(v["result"] == "refused" for v in rows.values())
        unit = "families" if zoo == "timm" else "models"
        lines += [f"## {zoo}: {ok}/{len(rows) - refused} {unit} with a head explained correctly"
                  + (f", {refused} headless refused" if refused else ""), "",
                  "| family | model | first | middle | last | s | result |",
                  "|---|---|---|---|---|---|---|"]
        for row in rows.values():
            cells = [_cell(row, d) for d in xai.DEFAULT_DEPTHS]
            result = row["result"] if row["result"] == "ok" else (
                f"{row['result']}: {row.get('message') or '; '.join(row.get('problems', []))}")
            lines.append(f"| {row['family']} | `{row['model']}` | {' | '.join(cells)} | "
                         f"{row['seconds']:.1f} | {result.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def _cell(row: dict, depth: str) -> str:
    layer = row.get("layers", {}).get(depth)
    if not layer:
        return "—"
    c, h, w = layer["shape"]
    return f"`{layer['name']}` {c}×{h}×{w}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", nargs="+", default=["timm", "torchvision", "transformers"])
    ap.add_argument("--only", default="", help="comma-separated families or model names")
    ap.add_argument("--out", default=str(ROOT / "docs" / "zoo"))
    ap.add_argument("--fresh", action="store_true", help="ignore earlier results")
    ap.add_argument("--list", action="store_true", help="print the plan and stop")
    ap.add_argument("--combine", nargs="+", default=[], metavar="JSON",
                    help="only write the table from these result files (runs split in parts)")
    args = ap.parse_args(argv)
    if args.combine:
        results = {k: v for f in args.combine for k, v in json.loads(Path(f).read_text()).items()}
        Path(args.out).with_suffix(".md").write_text(markdown(results))
        return 0
    rows = plan(args.zoo, Path(args.out).with_name("zoo_plan.json"))
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only:
        rows = [r for r in rows if r[1] in only or r[2] in only
                or r[2].split("/")[-1] in only]
    if args.list:
        for zoo, fam, name in rows:
            print(f"{zoo:12} {fam:28} {name}")
        return 0
    out_json = Path(args.out).with_suffix(".json")
    results: dict[str, dict] = {}
    if out_json.exists() and not args.fresh:
        results = json.loads(out_json.read_text())
    for zoo, fam, name in rows:
        if name in results and not only:
            continue
        try:
            row = run_one(name)
        except Exception as exc:  # the zoo reports every failure and goes on
            row = {"result": "error", "message": f"{type(exc).__name__}: {exc}"[:300],
                   "seconds": 0.0, "trace": traceback.format_exc(limit=-3)}
        row.update(zoo=zoo, family=fam, model=name)
        results[name] = row
        print(f"{row['result']:8} {row['seconds']:6.1f}s {name:48} "
              + " | ".join(_cell(row, d) for d in xai.DEFAULT_DEPTHS)
              + (f"  {row.get('message') or row.get('problems')}" if row["result"] != "ok" else ""),
              flush=True)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(results, indent=1, default=_json))
    Path(args.out).with_suffix(".md").write_text(markdown(results))
    bad = [k for k, v in results.items() if v["result"] not in ("ok", "refused")]
    print(f"{len(results) - len(bad)}/{len(results)} ok or refused; not ok: {', '.join(bad)}")
    return 0


def _json(obj):
    return obj.tolist() if isinstance(obj, np.ndarray) else str(obj)


if __name__ == "__main__":
    raise SystemExit(main())
