"""Hugging Face ``transformers`` image classifiers by name: ``hf:<repo>`` or ``hf:<model type>``.

``hf:google/vit-base-patch16-224`` loads the repository's safetensors weights (pickled
``.bin`` files are refused; remote code is never trusted), its labels and its image
processor's preprocessing. ``hf:vit``, ``hf:convnext``, ... build the model type's default
configuration with an ImageNet-1k head, offline (random weights unless a repository is named).
``transformers`` is an optional extra: ``pip install xai-cam[hf]``.
"""

from __future__ import annotations

from .errors import UnknownModelError
from .loaders import HF_PREFIX, check_hub, imagenet_labels, weights_error
from .models import LoadedModel
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def load_transformers(name: str, pretrained: bool) -> LoadedModel:
    """``hf:<repo>`` (weights when ``pretrained``) or ``hf:<model type>`` (random weights)."""
    try:
        import transformers
    except ImportError as exc:
        raise UnknownModelError(f"{name!r} needs the optional package transformers: "
                                f"pip install 'xai-cam[hf]'") from exc
    ref = name.removeprefix(HF_PREFIX).strip()
    if not ref:
        raise UnknownModelError("'hf:' needs a repository (hf:google/vit-base-patch16-224) or a "
                                "model type (hf:vit)")
    auto = transformers.AutoModelForImageClassification
    if "/" not in ref:
        config = _type_config(transformers, ref, name)
        module = auto.from_config(config)
        processor = _default_processor(transformers, config.model_type)
        pretrained = False
    else:
        module, processor = _from_repo(transformers, auto, ref, name, pretrained)
    labels = [str(module.config.id2label.get(i, i)) for i in range(module.config.num_labels)]
    return LoadedModel(name, module, labels,
                       _preprocessing(module.config, processor, defaults="/" not in ref),
                       source="transformers", pretrained=pretrained)


def _type_config(transformers, model_type: str, name: str):
    try:
        config = transformers.AutoConfig.for_model(model_type)
    except (KeyError, ValueError) as exc:
        raise UnknownModelError(f"unknown transformers model type {model_type!r} in {name!r}; "
                                f"name a repository (hf:OWNER/NAME) or a type such as vit, "
                                f"deit, convnext, swin, resnet") from exc
    labels = imagenet_labels()
    config.architectures = config.architectures or []  # from_config looks them up
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {v: k for k, v in config.id2label.items()}
    return config


def _from_repo(transformers, auto, ref: str, name: str, pretrained: bool):
    if pretrained:
        check_hub(name, ref, ("model.safetensors", "config.json"))
    try:
        if pretrained:
            module = auto.from_pretrained(ref, use_safetensors=True, trust_remote_code=False)
        else:
            config = transformers.AutoConfig.from_pretrained(ref, trust_remote_code=False)
            module = auto.from_config(config)
        processor = transformers.AutoImageProcessor.from_pretrained(ref,
                                                                    trust_remote_code=False)
    except Exception as exc:  # hub, file or format errors all mean the same to the user
        raise weights_error(name, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    return module, processor


def _default_processor(transformers, model_type: str):
    from transformers.models.auto import image_processing_auto

    names = image_processing_auto.IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or {}
    for key in ("pil", "torchvision"):
        cls = getattr(transformers, names.get(key) or "", None) if isinstance(names, dict) \
            else None
        if cls is not None:
            try:
                return cls()
            except Exception:  # a processor that needs a backend not installed
                continue
    return None


def _preprocessing(config, processor, defaults: bool = False) -> Preprocessing:
    """The model's preprocessing from its image processor; with
    ``defaults`` (a model type's default config) at the config's image size, else 224."""
    size = getattr(processor, "size", None) or {}
    crop = getattr(processor, "crop_size", None) or {}
    if defaults:
        side = getattr(config, "image_size", None) or 224
        size, crop = {"height": side, "width": side}, {}
    side = getattr(config, "image_size", None) or size.get("shortest_edge") or 224
    side = side[0] if isinstance(side, (list, tuple)) else int(side)
    if getattr(processor, "do_center_crop", False) and crop.get("height"):
        input_size = (int(crop["height"]), int(crop["width"]))
    elif "height" in size:
        input_size = (int(size["height"]), int(size["width"]))
    else:
        input_size = (side, side)
    crop_pct = float(getattr(processor, "crop_pct", None) or 1.0)
    if size.get("shortest_edge", 0) >= 384:  # ConvNeXt's processor: no crop from 384 px up
        crop_pct = 1.0
    if getattr(processor, "do_center_crop", False) and size.get("shortest_edge") and crop:
        crop_pct = input_size[0] / int(size["shortest_edge"])
    mean = tuple(float(v) for v in (getattr(processor, "image_mean", None) or IMAGENET_MEAN))
    std = tuple(float(v) for v in (getattr(processor, "image_std", None) or IMAGENET_STD))
    resample = getattr(processor, "resample", 2)
    interpolation = _RESAMPLE_NAMES.get(int(getattr(resample, "value", resample) or 2),
                                        "bilinear")
    return Preprocessing(input_size, mean, std, interpolation, min(crop_pct, 1.0))
