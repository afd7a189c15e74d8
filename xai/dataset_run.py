"""Explain a dataset on this machine: a DataLoader decodes in worker processes, the model
explains batches, rows go to the resumable Parquet manifest in chunks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .batch import BatchExplainer, RunOptions, method_names
from .datasets import Sample
from .decoding import decode, model_config
from .manifest import MANIFEST_DIR, ManifestWriter, check_run, done_ids, schema
from .models import LoadedModel, load_model

CPU_BATCH, GPU_BATCH = 8, 32


@dataclass
class RunReport:
    """What one call did: images found, skipped as done, explained, failed; speed."""

    total: int
    already_done: int
    explained: int
    errors: int
    rows: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.explained / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"total": self.total, "already_done": self.already_done,
                "explained": self.explained, "errors": self.errors, "rows": self.rows,
                "seconds": round(self.seconds, 3),
                "images_per_second": round(self.images_per_second, 3)}


class DecodeDataset(torch.utils.data.Dataset):
    """Samples decoded and preprocessed on access (in DataLoader workers)."""

    def __init__(self, samples: Sequence[Sample], model_cfg: dict, fit: str, keep_region: bool):
        self.samples = [s.to_dict() for s in samples]
        self.model_cfg, self.fit, self.keep_region = model_cfg, fit, keep_region

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return decode(self.samples[i], self.model_cfg, self.fit, self.keep_region)


def auto_batch_size(model: LoadedModel) -> int:
    """8 on a CPU, 32 on a GPU (a batch that runs out of memory is halved and retried)."""
    return GPU_BATCH if model.device.type == "cuda" else CPU_BATCH


def settings(opts: RunOptions) -> dict:
    """What ``run.json`` records: the options that change rows."""
    return opts.key()


def pending(samples: Sequence[Sample], out: Path, opts: RunOptions) -> tuple[list[Sample], int]:
    """The samples not yet in the manifest at ``out`` (after checking the settings match)."""
    check_run(out, settings(opts))
    done = done_ids(out / MANIFEST_DIR) if (out / MANIFEST_DIR).is_dir() else set()
    return [s for s in samples if s.id not in done], len(done)


def run_local(samples: Sequence[Sample], opts: RunOptions, *, model: LoadedModel | None = None,
              batch_size: int | None = None, workers: int = 1, chunk: int = 64,
              progress: bool = True) -> RunReport:
    """Explain every sample not yet in ``opts.out``'s manifest; return what was done."""
    out = Path(opts.out)
    todo, done = pending(samples, out, opts)
    t0 = time.perf_counter()
    if not todo:
        return RunReport(len(samples), done, 0, 0, 0, 0.0)
    model = model or load_model(opts.model, pretrained=opts.pretrained)
    explainer = BatchExplainer(model, opts)
    sch = schema(method_names(opts.methods), opts.depths, opts.faithfulness)
    writer = ManifestWriter(out / MANIFEST_DIR, sch)
    bs = batch_size or auto_batch_size(model)
    data = DecodeDataset(todo, model_config(model), opts.fit, opts.overlays)
    loader = torch.utils.data.DataLoader(
        data, batch_size=bs, num_workers=workers, collate_fn=list,
        prefetch_factor=2 if workers else None, persistent_workers=False)
    bar = _progress(len(todo), progress)
    buffer: list[dict] = []
    explained = errors = rows = in_buffer = 0
    for batch in loader:
        new = explainer.rows(batch)
        buffer += new
        in_buffer += len(batch)
        errors += sum(r["status"] == "error" for r in new)
        explained += len(batch)
        if in_buffer >= chunk:
            writer.write(buffer)
            rows += len(buffer)
            buffer, in_buffer = [], 0
        bar(len(batch), explained, time.perf_counter() - t0)
    writer.write(buffer)
    rows += len(buffer)
    bar(0, explained, time.perf_counter() - t0, close=True)
    return RunReport(len(samples), done, explained, errors, rows, time.perf_counter() - t0)


def _progress(total: int, enabled: bool):
    """A tqdm bar (images/s, ETA) on a terminal; elsewhere a log line every 10 s."""
    if enabled and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc="explaining", unit="img", file=sys.stderr, smoothing=0.1)

        def tick(n, done, seconds, close=False):
            bar.update(n)
            if close:
                bar.close()
        return tick
    last = [0.0, -1]

    def log(n, done, seconds, close=False):
        if not enabled or (seconds - last[0] < 10 and not close) or done == last[1]:
            return
        last[0], last[1] = seconds, done
        rate = done / seconds if seconds else 0.0
        eta = (total - done) / rate if rate else float("inf")
        print(f"explaining: {done}/{total} images, {rate:.2f} img/s, ETA {eta:.0f} s",
              file=sys.stderr, flush=True)
    return log
