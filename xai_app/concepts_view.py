"""Deep Feature Factorization concepts (:mod:`xai.concepts`) for the embeddings view: one
labelled picture of the k concepts' maps at the chosen depth, and a table of their top classes.
No Gradio here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import xai
from xai.concepts import ConceptMaps, concept_caption, concept_maps, concepts_sheet
from xai.errors import LayerError, OptionError

from .service import CACHE, DEPTHS, check_fit, check_mode, check_model, on_gpu, whole_number

DEFAULT_CONCEPTS, MAX_CONCEPTS = 4, 8
CONCEPT_HEADERS = ["concept", "top classes"]  # the concept vector through the classifier


@dataclass
class ConceptRun:
    """The concepts of one image at one depth, and their picture."""

    concepts: ConceptMaps
    picture: Any  # PIL image
    layer: str


def check_depth(depth: object) -> str:
    """One of first / middle / last; :class:`xai.LayerError` otherwise."""
    if not isinstance(depth, str) or depth not in DEPTHS:
        raise LayerError(f"depth must be one of {', '.join(DEPTHS)}, not {str(depth)[:40]!r}")
    return depth


def _concepts(name: str, image, mode: str, fit: str, depth: str, k: int) -> ConceptRun:
    model = CACHE.get(name)  # one forward (Eigen-CAM: no backward), the layer's activations kept
    result = xai.explain(model, image, ["eigencam"], [depth], mode=mode, fit=fit,
                         keep_activations=True)
    c = concept_maps(result, depth, k, model)
    layer = result.layer(depth)
    title = f"{k} DFF concepts at {depth} ({layer.name}, {layer.size})"
    # two columns: still readable on a phone, where the picture is shrunk to the screen
    return ConceptRun(c, concepts_sheet(c, result.image, cols=2, title=title), layer.name)


compute_concepts = on_gpu(_concepts)


def concepts(name: object, image, *, mode: object = "stages", fit: object = "crop",
             depth: object = "last", n_concepts: object = DEFAULT_CONCEPTS) -> ConceptRun:
    """Validate, then factorize the chosen depth's activations into ``n_concepts`` concepts.
    Raises :class:`xai.XaiError` with one clear message for a bad input."""
    if image is None:
        raise xai.ImageError("no image: upload one, paste it, take a photo or pick an example")
    name, mode, fit, depth = check_model(name), check_mode(mode), check_fit(fit), check_depth(
        depth)
    try:
        k = whole_number(n_concepts, "concepts", 2, MAX_CONCEPTS)
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return compute_concepts(name, image, mode, fit, depth, k)


def concept_rows(run: ConceptRun) -> list[list[str]]:
    """One row per concept under :data:`CONCEPT_HEADERS`."""
    c = run.concepts
    return [[f"concept {j + 1}", concept_caption(c, j).partition(": ")[2]]
            for j in range(c.maps.shape[0])]
