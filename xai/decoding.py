"""Decoding for dataset runs: read and preprocess one image in a worker process (DataLoader
worker or Ray actor thread), as the model's own eval transform does."""

from __future__ import annotations

import numpy as np

from .images import load_image, prepare
from .models import LoadedModel
from .preprocessing import Preprocessing


def decode(sample: dict, model_cfg: dict, fit: str, keep_region: bool) -> dict:
    """Read and preprocess one image (in a worker): the tensor, its region and sizes, or the
    one-line error that puts the image in the manifest as skipped."""
    try:
        img = load_image(sample["path"])
        prep = prepare(img, Preprocessing.from_dict(model_cfg), fit)
    except Exception as exc:  # any unreadable file is logged, never fatal
        return {"sample": sample, "error": f"{type(exc).__name__}: {exc}"[:300]}
    region = None
    if keep_region:
        pic = prep.region.copy()
        pic.thumbnail((512, 512))
        region = np.asarray(pic.convert("RGB"))
    return {"sample": sample, "tensor": prep.tensor[0], "box": list(prep.box), "region": region,
            "size": list(img.size)}


def model_config(model: LoadedModel) -> dict:
    """The model's preprocessing as a plain dict (sent to worker processes)."""
    return model.preprocessing.to_dict()
