"""Deep Feature Factorization (Collins et al., ECCV 2018, arXiv:1806.10206): a layer's
feature map split into a few non-negative concepts, each with a heat map and, at the layer that
feeds the classifier, the classes it scores highest.

    A (C x NHW, shifted >= 0 per channel) ~ W H  (NMF, k components; scikit-learn, random init,
    seed 0, as pytorch-grad-cam's ``dff``); concept j: vector W_j + offset, map H_j

    r = xai.explain("efficientnet_lite0", "cat.png", keep_activations=True)
    c = xai.concept_maps(r, n_components=4); c.maps.shape, c.labels
    concepts_sheet(c, r.image).save("concepts.png")  # each map overlaid, with its classes
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from sklearn.decomposition import NMF

from .errors import OptionError


def factorize(acts: np.ndarray, n_components: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) activations -> concepts (C, k) and maps (N, k, H, W), as pytorch-grad-cam's
    ``dff``."""
    n, c, h, w = acts.shape
    x = np.nan_to_num(acts.transpose(1, 0, 2, 3).reshape(c, -1).astype(np.float32))
    offset = x.min(axis=1)
    nmf = NMF(n_components=n_components, init="random", random_state=0)
    weights = nmf.fit_transform(x - offset[:, None])
    maps = nmf.components_.reshape(n_components, n, h, w).transpose(1, 0, 2, 3)
    return weights + offset[:, None], maps


@dataclass
class ConceptMaps:
    """``maps``: (k, H, W) in [0, 1] at the explained image's size; ``concepts``: (C, k);
    ``labels``: per concept, its top classes with scores (empty where the layer does not feed
    the classifier)."""

    depth: str
    maps: np.ndarray
    concepts: np.ndarray
    labels: list[list[tuple[str, float]]]


def concept_maps(result, depth: str | None = None, n_components: int = 5, model=None,
                 top: int = 2) -> ConceptMaps:
    """DFF concepts of one explained layer (the last by default) of ``result``, from its kept
    activations (``keep_activations=True``), or one hooked forward of ``model``."""
    from .embeddings import layer_activations

    depth = result.depths[-1] if depth is None else str(depth)
    act = layer_activations(result, model)[depth].float()
    if not 1 <= n_components <= act.shape[0]:
        raise OptionError(f"n_components must be in 1..{act.shape[0]}, not {n_components}")
    concepts, maps = factorize(act[None].cpu().numpy(), n_components)
    m = torch.from_numpy(maps[0]).float()
    flat = m.reshape(n_components, -1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)
    m = (m - lo[:, None, None]) / (hi - lo + 1e-7)[:, None, None]
    m = F.interpolate(m[None], size=result.image.shape[:2], mode="bilinear",
                      align_corners=False)[0].clamp(0, 1)
    return ConceptMaps(depth, m.numpy(), concepts, _labels(model, concepts, result, top))


def _labels(model, concepts: np.ndarray, result, top: int) -> list[list[tuple[str, float]]]:
    """Each concept vector through the classifier (timm's ``get_classifier``) when it takes
    exactly this layer's channels; else no labels."""
    head = getattr(getattr(model, "module", None), "get_classifier", lambda: None)()
    if not isinstance(head, torch.nn.Linear) or head.in_features != concepts.shape[0]:
        return [[] for _ in range(concepts.shape[1])]
    with torch.no_grad():
        w = torch.from_numpy(np.float32(concepts.T)).to(head.weight.device)
        probs = head(w).float().softmax(dim=1).cpu()
    top_p = probs.topk(top, dim=1)
    return [[(result.labels[int(i)], float(p)) for p, i in zip(ps, ix)]
            for ps, ix in zip(top_p.values, top_p.indices)]


def concept_caption(c: ConceptMaps, j: int) -> str:
    """"concept 2: tabby 41 %, tiger cat 22 %" (or that the layer does not feed the head)."""
    labs = ", ".join(f"{name} {p:.0%}" for name, p in c.labels[j])
    return f"concept {j + 1}: " + (labs or "no class labels at this depth")


def concepts_sheet(c: ConceptMaps, image: np.ndarray, tile: int = 224, cols: int = 4,
                   title: str = "") -> Image.Image:
    """One labelled picture: each concept's map overlaid on ``image`` (jet), in a grid of
    ``cols``, captioned with its top classes (:func:`concept_caption`; only a layer that feeds
    the classifier has them)."""
    from .render import BG, INK, MUTED, PAD, _fit, font, overlay

    k = c.maps.shape[0]
    cols = max(1, min(cols, k))
    cap_h, foot_h = 40, 26 if title else 0  # the title below: a viewer's label sits on top
    rows = -(-k // cols)
    grid_h = PAD + rows * (tile + cap_h + PAD)
    canvas = Image.new("RGB", (PAD + cols * (tile + PAD), grid_h + foot_h), BG)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((PAD, grid_h), _fit(title, font(14, True), canvas.width - 2 * PAD), fill=INK,
                  font=font(14, True))
    for j in range(k):
        x = PAD + (j % cols) * (tile + PAD)
        y = PAD + (j // cols) * (tile + cap_h + PAD)
        pic = Image.fromarray(overlay(image, c.maps[j])).resize((tile, tile), Image.BILINEAR)
        canvas.paste(pic, (x, y))
        head, _, rest = concept_caption(c, j).partition(": ")
        draw.text((x, y + tile + 3), head, fill=INK, font=font(13, True))
        draw.text((x, y + tile + 20), _fit(rest, font(12), tile), fill=MUTED, font=font(12))
    return canvas
