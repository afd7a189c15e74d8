"""Maps fused across the explained depths (first/middle/last), from maps already computed.

LayerCAM fusion (Jiang et al., IEEE TIP 2021; as pytorch-grad-cam's ``LayerCAM`` given several
target layers): each layer's LayerCAM map in [0, 1] at the input's size, averaged, rescaled:

    M = s( mean_l s(M_l) ),   s = min-max scaling to [0, 1]

RefineCAM (pytorch-grad-cam's ``RefineCAM``; base Grad-CAM++): the product, which keeps what
every layer agrees on and removes the noise of the early ones:

    M = s( prod_l s(M_l) )

    r = xai.explain("efficientnet_lite0", "cat.png", methods=["layercam", "gradcam++"])
    fused = xai.fused_map(r, "refinecam")
"""

from __future__ import annotations

import numpy as np

from ..errors import MethodError

FUSIONS = {"layercam-fusion": ("layercam", "mean"), "refinecam": ("gradcam++", "prod")}
FUSED = "fused"  # the depth of a fused panel in the gallery, the overlays and the manifest
FUSION_TITLES = {"layercam-fusion": "LayerCAM fusion", "refinecam": "RefineCAM"}


def fused_map(result, kind: str = "layercam-fusion", target: int | str | None = None,
              size: tuple[int, int] | None = None, base: str | None = None) -> np.ndarray:
    """Float32 HxW map in [0, 1]: ``kind`` (``"layercam-fusion"`` or ``"refinecam"``) over
    every explained depth of ``result`` (an :class:`~xai.Explanation`); ``base`` overrides the
    fused method (LayerCAM, or Grad-CAM++ for RefineCAM)."""
    key = str(kind).strip().lower().replace("_", "-")
    if key not in FUSIONS:
        raise MethodError(f"unknown fusion {kind!r}; use any of {', '.join(FUSIONS)}")
    method, how = FUSIONS[key]
    maps = np.stack([result.cam(base or method, d, target, size) for d in result.depths])
    out = maps.mean(axis=0) if how == "mean" else maps.prod(axis=0)
    out = out - out.min()
    return (out / (out.max() + 1e-7)).astype(np.float32)


def fusions_of(result) -> list[str]:
    """The fusions a gallery shows for ``result``: LayerCAM fusion, and RefineCAM beside it,
    once LayerCAM was computed at two depths or more (the mission's four alone get none)."""
    if "layercam" not in result.methods or len(result.depths) < 2:
        return []
    return [k for k, (base, _) in FUSIONS.items() if base in result.methods]


def panel_map(result, method: str, depth: str, target: int | str | None = None,
              size: tuple[int, int] | None = None) -> np.ndarray:
    """A gallery panel's map: ``result.cam(method, depth)``, or the fusion ``method`` when
    ``depth`` is :data:`FUSED`."""
    if depth == FUSED:
        return fused_map(result, method, target, size)
    return result.cam(method, depth, target, size=size)
