"""Raw maps: every panel's map as a float32 ``.npy``, at the layer's feature-map resolution and
at the explained image's size, in the run's ZIP; the feature-map ones also as files beside the
overlays (the /explain API's raw output: small, where the image-size ones would double the
run's largest part on disk).

The values are the ones the overlays colour: ReLU'd and min-max scaled to [0, 1] per map
(pytorch-grad-cam's ``scale_cam_image``); the image-size map is the feature-map one enlarged
bilinearly and scaled again (:meth:`xai.Explanation.cam`). Guided Grad-CAM has no feature-map
map (it is a pixel-level product), so it has the image-size one only.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xai.cams import GUIDED, get_method
from xai.cams.fusion import FUSED, fusions_of
from xai.engine import Explanation

RAW_DIR = "raw"


def npy_bytes(arr: np.ndarray) -> bytes:
    """``arr`` as float32 in NumPy's ``.npy`` format (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def feature_map(result: Explanation, method: str, depth: str, target: int) -> np.ndarray | None:
    """The (h, w) map at the layer's own resolution (None for Guided Grad-CAM)."""
    if method == GUIDED:
        return None
    m = get_method(method)
    key = (m.name, depth, None if m.class_agnostic else target)
    return result.maps[key].float().cpu().numpy()


def raw_bytes(result: Explanation) -> int:
    """An upper bound of the raw maps' bytes: image size in the ZIP (deflate never grows a
    file by more than 1 %), feature maps in the ZIP and as files; 256 bytes of headers each."""
    h, w = result.image.shape[:2]
    fmaps = sum(4 * result.layer(d).shape[-1] * result.layer(d).shape[-2] + 256
                for d in result.depths)
    n = len(result.targets) * len(result.panel_methods)
    fused = len(result.targets) * len(fusions_of(result))  # image size only
    return int((n * len(result.depths) + fused) * (4.04 * h * w + 512) + 2 * n * fmaps)


def entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``raw`` (file names) to every overlay entry of a run manifest; return the entries."""
    for entry in manifest["files"]["overlays"]:
        base = Path(entry["map"]).stem
        entry["raw"] = {"image_size": f"{RAW_DIR}/{base}.npy"}
        if entry["method"] != GUIDED and entry["depth"] != FUSED:
            entry["raw"]["feature_map"] = f"{RAW_DIR}/{base}_fmap.npy"
    manifest["files"]["raw"] = {
        "format": "float32 .npy (numpy.load), values in [0, 1] as the overlays colour them",
        "image_size": "height × width of image.png (the explained region)",
        "feature_map": "the layer's own grid (the layer table's H × W); none for Guided Grad-CAM"
                       " and the fused panels (depth 'fused', at the image's size)"}
    return manifest["files"]["overlays"]


def write(manifest: dict[str, Any], maps: list[np.ndarray],
          feature_maps: list[np.ndarray | None], folder: Path, zf: zipfile.ZipFile,
          pause: Callable[[], None] = lambda: None) -> list[Path]:
    """Write every raw map listed by :func:`entries` (``maps`` at image size and
    ``feature_maps``, None where the entry has no ``raw/…_fmap.npy``, in the entries' order)
    into ``zf``, and the feature-map ones into
    ``folder`` too; the paths of those files. ``pause()`` runs before each entry (the
    background build lets requests go first there)."""
    paths = []
    for entry, image_size, fmap in zip(manifest["files"]["overlays"], maps, feature_maps,
                                       strict=True):
        raw = entry.get("raw") or {}
        pause()
        # deflate level 1: float32 maps shrink as much as at the default level 6 (6.77 against
        # 6.73 MB a run) for 12 % less CPU; stored they were 40 % larger
        zf.writestr(raw["image_size"], npy_bytes(image_size), compresslevel=1)
        if fmap is not None:  # None where the entry has no feature-map file
            data = npy_bytes(fmap)
            zf.writestr(raw["feature_map"], data)
            path = folder / raw["feature_map"]
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            paths.append(path)
    return paths
