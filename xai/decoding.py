"""Decoding for dataset runs: read and preprocess one image in a worker process (DataLoader
worker or Ray actor thread), as the model's own eval transform does."""

from __future__ import annotations

import numpy as np

from .images import load_image, prepare
from .models import LoadedModel


def decode(sample: dict, model_cfg: dict, fit: str, keep_region: bool) -> dict:
    """Read and preprocess one image (in a worker): the tensor, its region and sizes, or the
    one-line error that puts the image in the manifest as skipped."""
    try:
        img = load_image(sample["path"])
        prep = prepare(img, tuple(model_cfg["input_size"]), model_cfg["mean"],
                       model_cfg["std"], model_cfg["interpolation"], model_cfg["crop_pct"], fit)
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
    return {"input_size": list(model.input_size), "mean": list(model.mean),
            "std": list(model.std), "interpolation": model.interpolation,
            "crop_pct": model.crop_pct}
