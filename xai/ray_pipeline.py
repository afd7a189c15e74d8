"""The same dataset pipeline on Ray Data, for a cluster: read the samples -> ``map_batches``
with an actor pool (one model per actor, a GPU per actor when the cluster has GPUs) -> the same
Parquet manifest, written by the driver in the same atomically renamed, resumable parts.

Ray is optional (``pip install 'xai-cam[ray]'``); the local path needs none of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .batch import BatchExplainer, RunOptions, method_names
from .dataset_run import CPU_BATCH, GPU_BATCH, RunReport, pending
from .datasets import DatasetError, Sample
from .decoding import decode, model_config
from .manifest import MANIFEST_DIR, ManifestWriter, schema, to_table


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise DatasetError("--ray needs Ray Data: pip install 'xai-cam[ray]' "
                           "(ray[data] and pyarrow)") from None
    return ray


class ExplainActor:
    """A Ray actor: loads the model once, then decodes and explains each batch it is given."""

    def __init__(self, opts: dict, threads: int = 1):
        import torch

        from .models import load_model

        torch.set_num_threads(max(1, threads))
        self.opts = RunOptions.from_dict(opts)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = load_model(self.opts.model, pretrained=self.opts.pretrained, device=device)
        self.explainer = BatchExplainer(model, self.opts)
        self.cfg = model_config(model)
        self.schema = schema(method_names(self.opts.methods), self.opts.depths,
                             self.opts.faithfulness)
        self.pool = ThreadPoolExecutor(max(2, threads))

    def __call__(self, batch: dict):
        samples = [json.loads(s) for s in batch["sample"]]
        decoded = list(self.pool.map(
            lambda s: decode(s, self.cfg, self.opts.fit, self.opts.overlays), samples))
        return to_table(self.explainer.rows(decoded), self.schema)


def _connect(address: str | None) -> dict:
    """Join the cluster at ``address`` (or start a local Ray) unless already connected; return
    the cluster's resources."""
    ray = _ray()
    if not ray.is_initialized():
        # on a cluster, ship this xai package to the workers (they need not have it installed)
        env = {"py_modules": [str(Path(__file__).resolve().parent)]} if address else None
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                 log_to_driver=False, configure_logging=False, runtime_env=env)
    return ray.cluster_resources()


def run_ray(samples: Sequence[Sample], opts: RunOptions, *, address: str | None = None,
            batch_size: int | None = None, actors: int | None = None,
            chunk: int = 64, threads: int | None = None) -> RunReport:
    """Explain every sample not yet in ``opts.out``'s manifest on Ray; rows stream back to the
    driver, which writes them in parts of ``chunk`` images as the local path does.
    ``threads``: torch threads per actor (default: the cluster's CPUs / actors)."""
    ray = _ray()
    out = Path(opts.out)
    todo, done = pending(samples, out, opts)
    if not todo:
        return RunReport(len(samples), done, 0, 0, 0, 0.0)
    t0 = time.perf_counter()
    res = _connect(address)
    gpus, cpus = int(res.get("GPU", 0)), float(res.get("CPU", 1))
    actors = actors or max(1, gpus)
    per_actor = max(0.5, cpus / actors - 0.5)  # leave room for Ray Data's own tasks
    bs = batch_size or (GPU_BATCH if gpus else CPU_BATCH)
    ds = ray.data.from_items([{"sample": json.dumps(s.to_dict())} for s in todo],
                             override_num_blocks=max(1, min(len(todo) // bs, 200)))
    ds = ds.map_batches(ExplainActor, batch_size=bs, batch_format="numpy", concurrency=actors,
                        fn_constructor_kwargs={"opts": opts.to_dict(),
                                               "threads": threads or max(1, round(cpus / actors))},
                        num_cpus=0 if gpus else per_actor, num_gpus=1 if gpus else 0)
    writer = ManifestWriter(out / MANIFEST_DIR, schema(method_names(opts.methods), opts.depths,
                                                       opts.faithfulness))
    buffer: list[dict] = []
    ids: set[str] = set()
    explained = errors = rows = 0
    for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        new = table.to_pylist()
        buffer += new
        fresh = {r["image_id"] for r in new} - ids
        ids |= fresh
        explained += len(fresh)
        errors += sum(r["status"] == "error" for r in new)
        if len({r["image_id"] for r in buffer}) >= chunk:
            writer.write(buffer)
            rows, buffer = rows + len(buffer), []
    writer.write(buffer)
    rows += len(buffer)
    return RunReport(len(samples), done, explained, errors, rows, time.perf_counter() - t0)

