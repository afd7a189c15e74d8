"""What the CLI and the app both write: file-safe names and a gallery with its overlays."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .explanation import Explanation

TRUE_WORDS = ("1", "true", "yes", "on")


def slug(text: str, limit: int = 40) -> str:
    """A lower-case, file- and URL-safe name: ``"Grad-CAM++"`` -> ``"grad-cam-pp"``."""
    text = str(text).lower().replace("++", "-pp").replace("+", "-plus")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:limit].strip("-")


def env_flag(*names: str) -> bool:
    """True when any of the environment variables ``names`` is set to 1, true, yes or on."""
    return any(os.environ.get(n, "").strip().lower() in TRUE_WORDS for n in names)


def write_outputs(result: Explanation, out: Path, stem: str, alpha: float = 0.5) -> dict:
    """Save the gallery and every overlay; return the manifest entry with the file names."""
    from PIL import Image

    from .render import fused_panels, gallery, panels

    out.mkdir(parents=True, exist_ok=True)
    files: dict = {"gallery": f"{stem}_gallery.png", "overlays": []}
    drawn = {t.index: panels(result, t.index, alpha) for t in result.targets}
    gallery(result, alpha=alpha, drawn=drawn).save(out / files["gallery"], compress_level=1)
    for tgt in result.targets:  # the fused row (if any) after each target's rows of depths
        for pic, method, depth, caption in drawn[tgt.index] + fused_panels(result, tgt.index,
                                                                           alpha):
            name = f"{stem}_{tgt.index}-{slug(tgt.label)}_{slug(method)}_{slug(depth)}.png"
            Image.fromarray(pic).save(out / name, compress_level=1)
            files["overlays"].append({"file": name, "method": method, "depth": depth,
                                      "target": tgt.index, "caption": caption})
    return dict(result.manifest(), files=files)
