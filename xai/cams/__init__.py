"""CAM methods, one file each on :class:`CamMethod`; add one with :func:`register_method`."""

from __future__ import annotations

from ..errors import MethodError
from .base import CamMethod
from .eigencam import EigenCAM, first_component_projection
from .gradcam import GradCAM
from .gradcam_plusplus import GradCAMPlusPlus
from .xgradcam import XGradCAM

METHODS: dict[str, CamMethod] = {}
GUIDED = "guided-gradcam"


def register_method(method: CamMethod) -> None:
    """Make ``method`` available by its ``name`` everywhere (library, CLI, app)."""
    METHODS[method.name] = method


for _cls in (GradCAM, GradCAMPlusPlus, EigenCAM, XGradCAM):
    register_method(_cls())

DEFAULT_METHODS = ("gradcam", "gradcam++", "eigencam", "xgradcam")


def method_names() -> list[str]:
    """Every registered method's name, in registration order."""
    return list(METHODS)


def get_method(name: str) -> CamMethod:
    """The method registered as ``name`` (case-insensitive); :class:`MethodError` if none."""
    key = str(name).strip().lower().replace("_", "-")
    aliases = {"gradcampp": "gradcam++", "grad-cam": "gradcam", "grad-cam++": "gradcam++",
               "gradcam-plusplus": "gradcam++", "eigen-cam": "eigencam", "xgrad-cam": "xgradcam"}
    key = aliases.get(key, key)
    if key not in METHODS:
        raise MethodError(f"unknown method {name!r}; use any of {', '.join(METHODS)}")
    return METHODS[key]


__all__ = ["CamMethod", "EigenCAM", "GradCAM", "GradCAMPlusPlus", "XGradCAM", "METHODS",
           "DEFAULT_METHODS", "GUIDED", "get_method", "method_names", "register_method",
           "first_component_projection"]
