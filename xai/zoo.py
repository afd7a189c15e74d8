"""The model zoos the library promises to cover, and the check that a model is covered.

``smallest_per_timm_family`` picks one model per timm module (a family), the one with the
fewest parameters among those with a classifier head; ``torchvision_classifiers`` lists
torchvision's ImageNet classifiers; ``TRANSFORMERS_SET`` names the Hugging Face configs tested
offline. ``check_explanation`` states what "works" means: three distinct layers in depth
order, whose resolution does not grow with depth, and finite maps in [0, 1].
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .engine import Explanation
from .layers import trace
from .models import LoadedModel

# Hugging Face ``transformers`` model types, built offline from their default configs
# (``hf:TYPE``; a repository, ``hf:google/vit-base-patch16-224``, needs the hub).
TRANSFORMERS_SET = ("vit", "deit", "convnext", "swin", "resnet")


def _parameter_count(name: str) -> int | None:
    """Parameters of timm model ``name``, built on the meta device (no memory, no init)."""
    import timm

    try:
        with torch.device("meta"):
            module = timm.create_model(name, pretrained=False)
    except Exception:  # some models cannot be built on meta; they are not the smallest then
        return None
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=1)
def smallest_per_timm_family() -> dict[str, str]:
    """timm module (family) -> its smallest model with a classifier head (else its smallest)."""
    import timm

    chosen: dict[str, str] = {}
    for family in timm.list_modules():
        names = timm.list_models(module=family)
        if not names:
            continue
        real = [n for n in names if not n.startswith("test_")] or names  # timm's toy configs
        headed = [n for n in real if _default_num_classes(n) > 0] or real
        sized = [(c, n) for n in headed if (c := _parameter_count(n)) is not None]
        chosen[family] = min(sized)[1] if sized else headed[0]
    return chosen


def _default_num_classes(name: str) -> int:
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    return int(getattr(cfg, "num_classes", 1000) or 0) if cfg is not None else 1000


def torchvision_classifiers() -> list[str]:
    """Every ImageNet classifier in ``torchvision.models`` (not detection, video, ...)."""
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def check_explanation(model: LoadedModel, result: Explanation) -> list[str]:
    """What is wrong with ``result``'s layers and maps for ``model`` (empty: nothing)."""
    problems: list[str] = []
    layers = [result.layers[d] for d in result.depths]
    names = [info.name for info in layers]
    if len(set(names)) != len(names):
        problems.append(f"repeated layers {names}")
    order = trace(model).order
    places = [order.get(n, -1) for n in names]
    if places != sorted(places):
        problems.append(f"layers out of depth order {names}")
    sides = [info.shape[1] * info.shape[2] for info in layers]
    if any(b > a for a, b in zip(sides, sides[1:])):
        problems.append(f"resolution grows with depth {[info.size for info in layers]}")
    for method in result.methods:
        for depth in result.depths:
            cam = result.cam(method, depth)
            if not np.isfinite(cam).all() or cam.min() < 0 or cam.max() > 1 + 1e-6:
                problems.append(f"{method} at {depth}: map not finite in [0, 1]")
    return problems


__all__ = ["TRANSFORMERS_SET", "check_explanation", "smallest_per_timm_family",
           "torchvision_classifiers"]
