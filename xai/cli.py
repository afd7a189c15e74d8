"""Command line: ``python -m xai explain IMAGE... --out DIR`` and ``python -m xai layers MODEL``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .cams import ALL_ONE_PASS, DEFAULT_METHODS, GUIDED, METHODS
from .engine import DEFAULT_DEPTHS, Explanation, explain
from .errors import XaiError
from .export import slug, write_outputs
from .layers import conv_layers, resolve_layer, stage_layers
from .models import DEFAULT_MODEL, load_model


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m xai",
                                description="Where does an image classifier look?")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="on an error, show the full traceback instead of one line")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("explain", help="write a CAM gallery, overlays and a JSON manifest",
                       parents=[common])
    e.add_argument("images", nargs="+", metavar="INPUT",
                   help="image files; or a dataset: a folder, a glob, a CSV/JSONL list, VOC XML "
                        "(or a VOC folder with Annotations/) or a COCO JSON")
    e.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    e.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help=f"any of {', '.join(METHODS)}; 'all': {', '.join(ALL_ONE_PASS)}; "
                        "'every': all of them (default: the four)")
    e.add_argument("--depths", nargs="+", default=list(DEFAULT_DEPTHS),
                   help="first middle last, fractions in [0, 1], conv:N or module names")
    e.add_argument("--mode", choices=("stages", "convs"), default="stages")
    e.add_argument("--target", nargs="+", default=None, help="class indices or labels")
    e.add_argument("--top-k", type=int, default=None, help="explain the k most probable classes")
    e.add_argument("--guided", action="store_true", help="add Guided Grad-CAM")
    e.add_argument("--fit", choices=("crop", "full"), default=None,
                   help="crop: the model's centre crop (default for image files); full: the "
                        "whole image (default for datasets: boxes anywhere can be hit)")
    e.add_argument("--alpha", type=float, default=0.5, help="heat-map weight in overlays")
    e.add_argument("--random-weights", action="store_true", help="pretrained=False (timing)")
    _report_arguments(e)
    e.add_argument("--out", required=True, type=Path, help="output folder")
    _dataset_arguments(e)
    rp = sub.add_parser("report", help="(re)write the HTML/JSON report of a dataset run",
                        parents=[common])
    rp.add_argument("out", type=Path, help="the --out folder of a dataset run")
    ly = sub.add_parser("layers", help="print the resolved layers and the conv count",
                        parents=[common])
    ly.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    ly.add_argument("--all", action="store_true", help="list every conv layer")
    ly.add_argument("--random-weights", action="store_true")
    return p


def _report_arguments(e: argparse.ArgumentParser) -> None:
    """Which map to believe: faithfulness, verdicts, sanity, embeddings."""
    e.add_argument("--faithfulness", action="store_true",
                   help="score every panel: RISE deletion/insertion AUC vs random/Sobel maps")
    e.add_argument("--steps", type=int, default=50,
                   help="deletion/insertion steps (RISE: 224 at 224x224; default 50)")
    e.add_argument("--road", action="store_true", help="add pytorch-grad-cam's ROAD (slow)")
    e.add_argument("--verdicts", action="store_true",
                   help="one verdict per panel: faithful (16-px cells, mean fill, LeRF-MoRF, "
                        "with an interval vs baselines), class- and model-sensitive, stable "
                        "(runs the sanity check too)")
    e.add_argument("--sanity", action="store_true",
                   help="model-parameter randomisation check: rank correlation and verdicts")
    e.add_argument("--embeddings", action="store_true",
                   help="embedding maps, top channels per layer, and (2+ images) a 2-D plot")


def _dataset_arguments(e: argparse.ArgumentParser) -> None:
    d = e.add_argument_group("datasets (a folder, glob, CSV, JSONL, VOC or COCO input)")
    d.add_argument("--batch-size", type=int, default=None, help="default: 8 on CPU, 32 on GPU")
    d.add_argument("--workers", type=int, default=1, help="DataLoader decoding processes")
    d.add_argument("--chunk", type=int, default=64, help="images per Parquet part (resume unit)")
    d.add_argument("--no-overlays", action="store_true", help="write no gallery per image")
    d.add_argument("--no-report", action="store_true", help="write no HTML/JSON report")
    d.add_argument("--tolerance", type=int, default=15, help="pointing game tolerance (px)")
    d.add_argument("--image-root", default=None, help="folder the annotation paths are under")
    d.add_argument("--label-map", type=Path, default=None,
                   help="JSON {dataset label: model class index or label}")
    d.add_argument("--difficult-flags", default=None,
                   help="TorchRay's pointing_game_ebp_voc07_difficult.txt for its exact split")
    d.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray Data (no ADDRESS: a local Ray; 'auto' or ray://host:10001)")
    d.add_argument("--actors", type=int, default=None, help="Ray: model actors (default: 1 "
                                                             "per GPU, else 1)")


def _explain(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .datasets import is_dataset_input

    if any(is_dataset_input(i) for i in args.images):
        from .cli_dataset import explain_dataset

        return explain_dataset(args)
    args.fit = args.fit or "crop"
    model = load_model(args.model, pretrained=not args.random_weights)
    entries = []
    explained: list[tuple[str, Explanation]] = []
    stems: set[str] = set()
    bar = tqdm(args.images, desc="explaining", unit="image", file=sys.stderr, leave=False,
               disable=len(args.images) < 2 or not sys.stderr.isatty())  # a terminal only
    for path in bar:
        stem = slug(Path(path).stem) or "image"
        while stem in stems:
            stem += "-1"
        stems.add(stem)
        result = explain(model, path, args.methods, args.depths, mode=args.mode,
                         targets=args.target, top_k=args.top_k, guided=args.guided, fit=args.fit,
                         keep_activations=args.embeddings)
        entry = write_outputs(result, args.out, stem, args.alpha)
        entry.update(_insights(model, result, args, stem))
        if args.embeddings:
            explained.append((stem, result))
        entries.append(dict(entry, image=str(path)))
        best = result.predictions[0]
        gallery_path = args.out / entry["files"]["gallery"]
        print(f"{path}: {best.label} ({best.probability:.1%}) -> {gallery_path}")
    manifest = {"model": model.name, "pretrained": model.pretrained,
                "preprocessing": model.config(),
                "methods": list(args.methods) + ([GUIDED] if args.guided else []),
                "images": entries}
    if len(explained) >= 2:
        from .embeddings import embedding_scatter, figure_image

        fig = embedding_scatter([r for _, r in explained], names=[s for s, _ in explained])
        figure_image(fig).save(args.out / "embeddings_2d.png")
        manifest["embeddings_2d"] = "embeddings_2d.png"
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return 0


def _insights(model, result: Explanation, args: argparse.Namespace, stem: str) -> dict:
    """Faithfulness tables, sanity report and embedding pictures of one result (manifest keys)."""
    out: dict = {}
    if args.faithfulness:
        from .faithfulness import score_explanation

        tables = [score_explanation(model, result, t.index, n_steps=args.steps, road=args.road)
                  for t in result.targets]
        out["faithfulness"] = [t.to_dict() for t in tables]
        md = "\n\n".join(f"target {t.target['label']} ({t.target['index']})\n\n{t.markdown()}"
                          for t in tables)
        (args.out / f"{stem}_faithfulness.md").write_text(md + "\n")
        for t in tables:
            best = next(r for r in t.rows if r["best"])
            print(f"  faithfulness ({t.target['label']}): best {best['method']} @ "
                  f"{best['depth']}, ins-del {best['score']:+.3f} "
                  f"({t.timings['total']:.1f} s, {t.forwards} images)")
    report = None
    if args.sanity or args.verdicts:
        from .sanity import sanity_check

        report = sanity_check(model, result)
        out["sanity"] = report.to_dict()
        (args.out / f"{stem}_sanity.md").write_text(report.markdown() + "\n")
        print("  sanity: " + ", ".join(f"{m} {v['verdict']}"
                                       for m, v in report.verdicts.items()))
    if args.verdicts:
        out["verdicts"] = _verdicts(model, result, report, args, stem)
    if args.embeddings:
        from .embeddings import embedding_figure, feature_grid

        files = {"maps": f"{stem}_embeddings.png", "channels": {}}
        embedding_figure(result).save(args.out / files["maps"])
        for depth in result.depths:
            name = f"{stem}_channels_{slug(depth)}.png"
            feature_grid(result, depth).save(args.out / name)
            files["channels"][depth] = name
        out["embeddings"] = files
    return out


def _verdicts(model, result: Explanation, report, args: argparse.Namespace, stem: str
              ) -> list[dict]:
    """One verdict per panel for every explained target: markdown file, manifest, one line."""
    from .verdict import judge

    reports = [judge(model, result, t.index, sanity=report) for t in result.targets]
    md = "\n\n".join(f"target {v.target['label']} ({v.target['index']})\n\n{v.markdown()}"
                      for v in reports)
    (args.out / f"{stem}_verdicts.md").write_text(md + "\n")
    for v in reports:
        print(f"  verdicts ({v.target['label']}): {v.summary}")
    return [v.to_dict() for v in reports]


def _layers(args: argparse.Namespace) -> int:
    model = load_model(args.model, pretrained=not args.random_weights)
    stages, convs = stage_layers(model), conv_layers(model)
    print(f"{model.name}: input {model.input_size[1]}x{model.input_size[0]}, "
          f"{len(convs)} conv layers run in an eval forward")
    chosen = {resolve_layer(model, d).name: d for d in DEFAULT_DEPTHS} if stages else {}
    print("stages (first/middle/last in stages mode):")
    for info in stages:
        print(f"  {chosen.get(info.name, ''):>6}  {info.description}")
    print("conv layers (first/middle/last in convs mode):")
    n = len(convs)
    picks = sorted({0, (n + 1) // 2 - 1, n - 1}) if n else []
    show = convs if args.all else [convs[i] for i in picks]
    for info in show:
        print(f"  {info.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (errors: one line on stderr, status 2; with
    ``--debug`` the exception propagates with its traceback)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "report":
            from .cli_dataset import report

            return report(args)
        return _explain(args) if args.command == "explain" else _layers(args)
    except XaiError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an unexpected failure still gets one line, not a traceback
        if args.debug:
            raise
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: unexpected {type(exc).__name__}: {first_line}", file=sys.stderr)
        return 1
