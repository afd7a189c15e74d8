"""The web demo's non-UI logic (model cache, explain runs, downloads) and its Gradio UI.

The ``xai`` library never imports this package; ``app.py`` at the repository root serves it.

Importing it first (as ``app.py`` does) sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set:
the compute thread's OpenMP workers then sleep between parallel regions instead of spinning,
which leaves the cores to the web server (and, in the bench, the browser): click to gallery
on the 2-core bench machine, three alternating pairs of runs (medians of 7 clicks), 251 / 269
/ 298 ms against 269 / 281 / 306 ms spinning. Libgomp reads it once, when torch loads:
imported after torch, it does nothing.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .service import (  # noqa: E402
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
