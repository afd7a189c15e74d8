"""xai: where an image classifier looks. Grad-CAM, Grad-CAM++, Eigen-CAM and XGrad-CAM at the
first, middle and last layers of any ImageNet classifier, from one forward and one backward."""

from .cams import ALL_ONE_PASS, DEFAULT_METHODS, METHODS, CamMethod, register_method
from .cams.fusion import FUSIONS, fused_map
from .concepts import ConceptMaps, concept_maps
from .engine import DEFAULT_DEPTHS, Explanation, Prediction, explain, explain_batch, predict
from .errors import (
    HeadlessModelError,
    ImageError,
    LayerError,
    MethodError,
    ModelOutputError,
    TargetError,
    UnknownModelError,
    WeightsUnavailableError,
    XaiError,
)
from .images import load_image, prepare
from .layers import LayerInfo, conv_layers, resolve_layer, stage_layers
from .models import (
    DEFAULT_MODEL,
    LoadedModel,
    load_model,
    register_model,
    registered_models,
    unregister_model,
    wrap_model,
)

__version__ = "0.1.0"

__all__ = [
    "ALL_ONE_PASS", "FUSIONS", "fused_map", "ConceptMaps", "concept_maps",
    "CamMethod", "DEFAULT_DEPTHS", "DEFAULT_METHODS", "DEFAULT_MODEL", "Explanation",
    "HeadlessModelError", "ImageError", "LayerError", "LayerInfo", "LoadedModel", "METHODS",
    "MethodError", "ModelOutputError", "Prediction", "TargetError", "UnknownModelError",
    "WeightsUnavailableError", "XaiError", "conv_layers", "explain", "explain_batch", "load_image",
    "load_model", "predict", "prepare", "register_method", "register_model", "registered_models",
    "resolve_layer", "stage_layers", "unregister_model", "wrap_model",
]
