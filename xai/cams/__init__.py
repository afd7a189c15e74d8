"""CAM methods, one file each on :class:`CamMethod`; add one with :func:`register_method`."""

from __future__ import annotations

from ..errors import MethodError
from .ablationcam import AblationCAM
from .base import CamMethod
from .eigencam import EigenCAM, first_component_projection
from .eigengradcam import EigenGradCAM
from .elementwise import GradCAMElementWise
from .fem import FEM
from .finercam import FinerCAM
from .fullgrad import FullGrad
from .gradcam import GradCAM
from .gradcam_plusplus import GradCAMPlusPlus
from .hirescam import HiResCAM
from .kpcacam import KPCACAM
from .layercam import LayerCAM
from .scorecam import ScoreCAM
from .shapleycam import ShapleyCAM
from .xgradcam import XGradCAM

METHODS: dict[str, CamMethod] = {}
GUIDED = "guided-gradcam"


def register_method(method: CamMethod) -> None:
    """Make ``method`` available by its ``name`` (and ``aliases``) everywhere."""
    METHODS[method.name] = method


for _cls in (GradCAM, GradCAMPlusPlus, EigenCAM, XGradCAM, HiResCAM, GradCAMElementWise,
             LayerCAM, EigenGradCAM, FEM, KPCACAM, FinerCAM, ShapleyCAM, ScoreCAM, AblationCAM,
             FullGrad):
    register_method(_cls())

DEFAULT_METHODS = ("gradcam", "gradcam++", "eigencam", "xgradcam")


def all_one_pass() -> tuple[str, ...]:
    """The registered methods that ride the shared pass at a small cost (``in_all``)."""
    return tuple(n for n, m in METHODS.items() if m.in_all and not m.perturbation)


ALL_ONE_PASS = all_one_pass()


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def get_method(name: str) -> CamMethod:
    """The method registered as ``name`` or one of its aliases (case-, ``_``/``-``-
    insensitive); :class:`MethodError` listing the registered names if none."""
    key = _key(name)
    for m in METHODS.values():
        if key == m.name or key in m.aliases or key.replace("-", "") == m.name.replace("-", ""):
            return m
    raise MethodError(f"unknown method {name!r}; use any of {', '.join(METHODS)}")


def method_names(names=None) -> list[str]:
    """Registered names of ``names`` (a list or comma-separated text; ``"all"`` is every
    one-pass method in :data:`ALL_ONE_PASS`, ``"every"`` every registered method; None: every
    registered method, in registration order)."""
    if names is None:
        return list(METHODS)
    if isinstance(names, str):  # "a, b": blanks between commas are skipped
        names = [n for n in names.split(",") if n.strip()]
    out: list[str] = []
    for n in names:  # a blank name in a list is an unknown method
        key = _key(n)
        found = (all_one_pass() if key == "all" else tuple(METHODS) if key == "every"
                 else (get_method(n).name,))
        out += [f for f in found if f not in out]
    return out


__all__ = ["CamMethod", "EigenCAM", "GradCAM", "GradCAMPlusPlus", "XGradCAM", "HiResCAM",
           "GradCAMElementWise", "LayerCAM", "EigenGradCAM", "FEM", "KPCACAM", "FinerCAM",
           "ShapleyCAM", "ScoreCAM", "AblationCAM", "FullGrad", "METHODS", "ALL_ONE_PASS",
           "DEFAULT_METHODS", "GUIDED", "all_one_pass", "get_method", "method_names",
           "register_method", "first_component_projection"]
