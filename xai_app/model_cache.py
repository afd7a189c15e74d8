"""The app's loaded models: :func:`load_offered` (real weights; random ones for benchmarks and
offline demos) and :class:`ModelCache`, a bounded, thread-safe cache that loads each model once."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import torch

import xai
from xai.export import env_flag
from xai.models import LoadedModel

log = logging.getLogger("xai_app")


def load_offered(name: str) -> LoadedModel:
    """Load ``name`` with its weights; with XAI_RANDOM_WEIGHTS=1 (benchmarks, offline demos)
    every model but the bundled one gets random weights instead, at the same cost per request."""
    if env_flag("XAI_RANDOM_WEIGHTS") and name != xai.DEFAULT_MODEL:
        return xai.load_model(name, pretrained=False)
    return xai.load_model(name)


class ModelCache:
    """At most ``size`` loaded models, least recently used dropped first; thread-safe.

    ``size`` defaults to env XAI_MODEL_CACHE (3). Two requests for the same model load it once.
    """

    def __init__(self, size: int | None = None,
                 loader: Callable[[str], LoadedModel] | None = None) -> None:
        self.size = max(1, int(size or os.environ.get("XAI_MODEL_CACHE") or 3))
        self._loader = loader or load_offered
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._models

    def names(self) -> list[str]:
        """Loaded model names, least recently used first."""
        with self._lock:
            return list(self._models)

    def peek(self, name: str) -> LoadedModel | None:
        """The model if loaded (without loading it or changing its rank)."""
        with self._lock:
            return self._models.get(name)

    def get(self, name: str) -> LoadedModel:
        """The loaded model ``name``, loading it (and dropping the oldest) if needed."""
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
            load_lock = self._loading.setdefault(name, threading.Lock())
        with load_lock:
            with self._lock:
                if name in self._models:
                    return self._models[name]
            try:
                t = time.perf_counter()
                model = self._loader(name)
                log.info("loaded %s on %s in %.1f s", name, getattr(model, "device", "?"),
                         time.perf_counter() - t)
            except BaseException:
                with self._lock:
                    self._loading.pop(name, None)
                raise
            dropped = []
            with self._lock:  # cached before the load lock goes: no window for a second load
                self._loading.pop(name, None)
                self._models[name] = model
                while len(self._models) > self.size:
                    dropped.append(self._models.popitem(last=False)[0])
            if dropped:
                log.info("model cache full (%d): dropped %s", self.size, ", ".join(dropped))
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            return model
