"""xai: where an image classifier looks. Grad-CAM, Grad-CAM++, Eigen-CAM and XGrad-CAM at the
first, middle and last layers of any ImageNet classifier, from one forward and one backward."""

from .cams import ALL_ONE_PASS, DEFAULT_METHODS, METHODS, CamMethod, register_method
from .cams.fusion import FUSIONS, fused_map
from .concepts import ConceptMaps, concept_maps
from .engine import DEFAULT_DEPTHS, explain, explain_batch, predict
from .errors import (
    ExplanationError,
    HeadlessModelError,
    ImageError,
    LayerError,
    MethodError,
    ModelOutputError,
    OptionError,
    TargetError,
    UnknownModelError,
    WeightsUnavailableError,
    XaiError,
)
from .explanation import Explanation, PanelKey, Prediction
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
from .passes import MapKey, Pass, run_pass
from .preprocessing import Preprocessing, PreprocessingError
from .targets import ClassTarget, RankTarget

__version__ = "0.1.0"

__all__ = [
    "ALL_ONE_PASS", "FUSIONS", "fused_map", "ConceptMaps", "concept_maps",
    "CamMethod", "ClassTarget", "DEFAULT_DEPTHS", "ExplanationError", "MapKey", "OptionError",
    "PanelKey", "Pass", "Preprocessing", "PreprocessingError", "RankTarget", "run_pass",
    "DEFAULT_METHODS", "DEFAULT_MODEL", "Explanation",
    "HeadlessModelError", "ImageError", "LayerError", "LayerInfo", "LoadedModel", "METHODS",
    "MethodError", "ModelOutputError", "Prediction", "TargetError", "UnknownModelError",
    "WeightsUnavailableError", "XaiError", "conv_layers", "explain", "explain_batch", "load_image",
    "load_model", "predict", "prepare", "register_method", "register_model", "registered_models",
    "resolve_layer", "stage_layers", "unregister_model", "wrap_model",
]
