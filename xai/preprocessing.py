"""A model's own eval preprocessing, as one frozen, checked value (timm's pretrained_cfg)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import XaiError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


class PreprocessingError(XaiError, ValueError):
    """A preprocessing setting that no image can be prepared with."""


@dataclass(frozen=True)
class Preprocessing:
    """Resize, centre-crop and normalise as the model was trained to expect.

    ``input_size`` is (height, width); ``crop_pct`` the centre crop's share of the shorter side
    (timm's convention); ``mean``/``std`` per RGB channel on [0, 1] pixels.
    """

    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.input_size)
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(size) != 2 or min(size) < 1:
            raise PreprocessingError(f"input_size must be (height, width) >= 1, not {size}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise PreprocessingError(f"mean and std need 3 values, std > 0: {mean}, {std}")
        if str(self.interpolation) not in INTERPOLATIONS:
            raise PreprocessingError(f"interpolation {self.interpolation!r} is not one of "
                                     f"{', '.join(INTERPOLATIONS)}")
        crop = float(self.crop_pct)
        if not (math.isfinite(crop) and crop > 0):
            raise PreprocessingError(f"crop_pct must be a positive number, not {self.crop_pct}")
        for key, value in (("input_size", size), ("mean", mean), ("std", std),
                           ("crop_pct", crop), ("interpolation", str(self.interpolation))):
            object.__setattr__(self, key, value)

    def to_dict(self) -> dict:
        """JSON-able: lists for the tuples."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        """The inverse of :meth:`to_dict` (unknown keys are ignored)."""
        return cls(**{k: data[k] for k in ("input_size", "mean", "std", "interpolation",
                                           "crop_pct") if k in data})
