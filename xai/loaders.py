"""Classifiers from the hubs by name: timm, torchvision and Hugging Face ``transformers``.

Each loader returns a :class:`~xai.models.LoadedModel` with the model's own preprocessing and
labels, and turns every download or hub failure into one clear, typed error. Weights are only
read through the libraries' own safe paths (safetensors, or ``weights_only`` checkpoints);
remote code is never trusted.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import Any
from urllib.parse import urlparse

import torch

from .errors import HeadlessModelError, UnknownModelError, WeightsUnavailableError
from .export import env_flag
from .models import DEFAULT_MODEL, LoadedModel
from .preprocessing import Preprocessing

HF_PREFIX = "hf:"
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "XAI_OFFLINE")


def imagenet_labels(subset: str = "imagenet-1k") -> list[str]:
    """Class names of an ImageNet subset (timm's descriptions, first synonym)."""
    return list(_labels(subset))


@functools.lru_cache(maxsize=4)
def _labels(subset: str) -> tuple[str, ...]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo(subset)
    return tuple(info.index_to_description(i).split(",")[0].strip()
                 for i in range(info.num_classes()))


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``XAI_OFFLINE`` is set to a true value."""
    return env_flag(*OFFLINE_FLAGS)


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face endpoint accepts a TCP connection within ``timeout`` seconds."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def weights_error(name: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"pretrained weights for {name!r} could not be loaded ({reason}); "
        f"the bundled model {DEFAULT_MODEL!r} works offline, or pass pretrained=False for "
        f"random weights")


def headless_error(name: str, detail: str) -> HeadlessModelError:
    return HeadlessModelError(
        f"{name!r} is a backbone without a classifier head ({detail}): it outputs features, "
        f"not classes, so there is no class to explain; load a variant with an ImageNet head "
        f"(e.g. a name ending in '.in1k'), or add a head and use xai.register_model")


def check_hub(name: str, hub_id: str | None, files: tuple[str, ...]) -> None:
    """Fail fast when weights are neither cached nor reachable (the hub retries ~1 minute)."""
    from huggingface_hub import try_to_load_from_cache

    cached = hub_id and any(isinstance(try_to_load_from_cache(hub_id, f), str) for f in files)
    if not cached and offline():
        raise weights_error(name, "offline and not in the local cache")
    if not cached and hub_id and not hub_reachable():
        raise weights_error(name, "the Hugging Face Hub cannot be reached (no network?)")


def load_timm(name: str, pretrained: bool) -> LoadedModel:
    """A timm model (``timm/`` optional) with timm's data config and labels."""
    import timm
    from timm.data import infer_imagenet_subset, resolve_data_config

    arch = name.removeprefix("timm/")
    if not timm.is_model(arch.split(".")[0]):
        raise UnknownModelError(
            f"unknown model {name!r}: not registered, not a timm model, and not "
            f"'torchvision/<name>' or 'hf:<repo>' (try {DEFAULT_MODEL!r}, 'resnet152', "
            f"'densenet121', 'inception_v3' or 'torchvision/resnet152')")
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is not None and getattr(cfg, "num_classes", 1000) == 0:
        raise headless_error(name, "timm's config has num_classes=0")
    if pretrained:
        check_hub(name, getattr(cfg, "hf_hub_id", None) if cfg is not None else None,
                   ("model.safetensors", "pytorch_model.bin"))
    try:
        module = timm.create_model(arch, pretrained=pretrained)
    except Exception as exc:  # network, hub or file errors all mean the same to the user
        raise weights_error(name, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if getattr(module, "num_classes", 1) == 0:
        raise headless_error(name, "num_classes=0")
    data = resolve_data_config({}, model=module)
    _, h, w = data["input_size"]
    subset = infer_imagenet_subset(module)
    labels = imagenet_labels(subset) if subset else [str(i) for i in range(module.num_classes)]
    prep = Preprocessing((h, w), tuple(data["mean"]), tuple(data["std"]),
                         data["interpolation"] or "bilinear", float(data["crop_pct"]))
    return LoadedModel(name, module, labels, prep, "timm", pretrained)


def load_torchvision(name: str, pretrained: bool) -> LoadedModel:
    """A torchvision classifier (``torchvision/NAME``) with its weights' transforms."""
    import torchvision.models as tvm

    arch = name.removeprefix("torchvision/")
    if arch not in tvm.list_models(module=tvm):
        raise UnknownModelError(f"unknown torchvision classifier {arch!r} in {name!r}")
    weights = tvm.get_model_weights(arch).DEFAULT
    kwargs: dict[str, Any] = {}
    if arch in ("inception_v3", "googlenet") and not pretrained:
        kwargs = {"init_weights": False, "aux_logits": True}
    crop = int(weights.transforms().crop_size[0])
    if arch.startswith("vit_") and not pretrained:
        kwargs = {"image_size": crop}  # the weights' size (518 for ViT-H/14), not the default
    if pretrained:
        file = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        if offline() and not os.path.exists(file):
            raise weights_error(name, "offline and not in the local cache")
    try:
        module = tvm.get_model(arch, weights=weights if pretrained else None, **kwargs)
    except Exception as exc:
        raise weights_error(name, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    tf = weights.transforms()
    crop, resize = int(tf.crop_size[0]), int(tf.resize_size[0])
    interpolation = str(getattr(tf.interpolation, "value", tf.interpolation))
    prep = Preprocessing((crop, crop), tuple(tf.mean), tuple(tf.std), interpolation,
                         crop / resize)
    return LoadedModel(name, module, list(weights.meta["categories"]), prep, "torchvision",
                       pretrained)
