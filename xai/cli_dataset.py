"""The command line for datasets: ``python -m xai explain FOLDER|GLOB|CSV|JSONL|XML|JSON``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .batch import RunOptions
from .datasets import DatasetError, read_samples


def options(args: argparse.Namespace) -> RunOptions:
    """The run's options from the ``explain`` arguments."""
    if args.guided or args.sanity or args.embeddings or args.road:
        raise DatasetError("--guided, --sanity, --embeddings and --road are for image files, "
                           "not datasets")
    label_map = {}
    if args.label_map:
        try:
            label_map = {str(k): str(v) for k, v in json.loads(args.label_map.read_text()).items()}
        except (OSError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{args.label_map}: not a JSON object ({exc})") from None
    return RunOptions(
        model=args.model, pretrained=not args.random_weights, methods=tuple(args.methods),
        depths=tuple(args.depths), mode=args.mode, fit=args.fit or "full",
        targets=tuple(args.target) if args.target else None, top_k=args.top_k,
        tolerance=args.tolerance, faithfulness=args.faithfulness, steps=args.steps,
        overlays=not args.no_overlays, out=str(args.out), label_map=label_map,
        difficult_flags=args.difficult_flags)


def explain_dataset(args: argparse.Namespace) -> int:
    """Explain a dataset (resuming a run in ``--out``), then write the report."""
    if args.batch_size is not None and args.batch_size < 1:
        raise DatasetError("--batch-size must be at least 1")
    opts = options(args)
    samples = read_samples(args.images, args.image_root)
    if args.ray:
        from .ray_pipeline import run_ray

        done = run_ray(samples, opts, address=None if args.ray == "local" else args.ray,
                       batch_size=args.batch_size, actors=args.actors, chunk=args.chunk)
    else:
        from .dataset_run import run_local

        done = run_local(samples, opts, batch_size=args.batch_size, workers=args.workers,
                         chunk=args.chunk)
    print(f"{done.explained} images explained ({done.errors} logged as errors), "
          f"{done.already_done} already done, {done.images_per_second:.2f} img/s -> "
          f"{Path(args.out) / 'manifest.parquet'}")
    (Path(args.out) / "last_run.json").write_text(json.dumps(done.to_dict(), indent=2))
    if not args.no_report:
        return report(argparse.Namespace(out=args.out))
    return 0


def report(args: argparse.Namespace) -> int:
    """Write ``report.html`` and ``report.json`` for the manifest in ``args.out``."""
    from .report_html import write_report

    html = write_report(Path(args.out))
    print(f"report -> {html}", file=sys.stdout)
    return 0
