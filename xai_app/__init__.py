"""The web demo's non-UI logic (model cache, explain runs, downloads) and its Gradio UI.

The ``xai`` library never imports this package; ``app.py`` at the repository root serves it.
"""

from .service import (
    DEFAULT_TOP_K,
    LAYER_HEADERS,
    MAX_TOP_K,
    METHOD_CHOICES,
    MODEL_TITLES,
    OFFERED_MODELS,
    ExplainRun,
    ModelCache,
    check_model,
    offered_models,
)

__all__ = [
    "DEFAULT_TOP_K", "LAYER_HEADERS", "MAX_TOP_K", "METHOD_CHOICES", "MODEL_TITLES",
    "OFFERED_MODELS", "ExplainRun", "ModelCache", "check_model", "offered_models",
]
