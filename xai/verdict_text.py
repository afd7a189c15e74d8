"""Words for :mod:`xai.verdict`: a badge and a reason per panel, the best panel, a summary.

Disagreements are stated, never resolved silently: a faithful map that fails the sanity check
"localises but fails the sanity check"; a class-agnostic map is never the best answer to a
class question; panels whose paired interval overlaps are "not distinguishable".

Two levels of "best": *believe* (faithful against all three baselines, class- and
model-sensitive, stable) and, when no panel is, *best supported* (the same checks, beating the
random and smooth random maps but tied with the edge map: on pictures whose outline is the
object, removal cannot tell the two apart, and the words say so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .cams import get_method
from .perturbation import bootstrap

if TYPE_CHECKING:
    from .verdict import PanelVerdict

BADGES = {"believe": "✓ believable", "sanity": "✗ fails sanity", "agnostic": "◐ class-agnostic",
          "baseline": "? ≈ baseline", "unstable": "≈ unstable", "same": "◐ same for other classes",
          "edges": "◑ ≈ edge map"}


def reasons(p: PanelVerdict, label: str, contrast: str) -> list[str]:
    """Every signal in words, good and bad."""
    out = []
    lost = [b for b, ok in p.beats.items() if not ok]
    if p.faithful:
        out.append("removing its top cells hurts the logit more than every baseline's")
    else:
        out.append("not distinguishable from the " + ", ".join(lost) + " baseline"
                   + ("s" if len(lost) > 1 else ""))
    if p.class_rho is None:
        out.append("its map is flat")
    elif not p.class_sensitive and p.class_rho < 0:
        out.append(f"its map for other classes is nearly its negative (ρ {p.class_rho:.2f} "
                   f"between {label} and {contrast}): the same regions, whatever the class")
    elif not p.class_sensitive:
        out.append(f"barely changes with the target (ρ {p.class_rho:.2f} between {label} and "
                   f"{contrast})")
    if p.model_sensitive is False:
        out.append(f"fails the sanity check (ρ {p.sanity_rho:.2f} once its layer and all above "
                   "are random)")
    elif p.model_sensitive is None:
        out.append("sanity check not run")
    if not p.stable:
        out.append(f"moves under small input noise (max-sensitivity {p.max_sensitivity:.2f})")
    return out


def headline(p: PanelVerdict) -> tuple[str, str]:
    """(badge key, short sentence) stating the main agreement or disagreement."""
    if p.faithful and p.model_sensitive is False:
        return "sanity", "localises but fails the sanity check"
    if p.faithful and not p.class_sensitive and not get_method(p.method).class_agnostic:
        return "same", "is faithful but barely changes with the class"
    if p.faithful and not p.class_sensitive:
        return "agnostic", ("is faithful but class-agnostic (shows what the layer sees, not "
                            "the class)")
    if supported(p):
        return "edges", ("passes the checks and beats the random maps, but an edge map does as "
                         "well")
    if not p.faithful and p.class_sensitive and p.model_sensitive is not False:
        return "baseline", "passes the checks but is not distinguishable from a baseline"
    if not p.faithful:
        return "baseline", "shows no evidence that it explains the model"
    if not p.stable:
        return "unstable", "is faithful and sensitive, but unstable"
    return "believe", "is faithful, class- and model-sensitive"


def eligible(p: PanelVerdict) -> bool:
    """Can answer "where does the model look for this class": faithful, class- and
    model-sensitive, and stable (a map that moves under small noise is not crowned)."""
    return p.faithful and checked(p)


def checked(p: PanelVerdict) -> bool:
    """Class-sensitive, not failing the sanity check, and stable."""
    return p.class_sensitive and p.model_sensitive is not False and p.stable


def supported(p: PanelVerdict) -> bool:
    """Passes :func:`checked` and beats the random and smooth random maps, but not the edge
    map: the best a panel can be when removal cannot separate the map from the outline."""
    return (not p.faithful and checked(p) and p.beats.get("random", False)
            and p.beats.get("smooth random", False))


def describe(panels: Sequence[PanelVerdict], vals: np.ndarray, w: np.ndarray, label: str,
             contrast: str, seed: int = 0) -> str:
    """Fill ``badge``, ``text`` and ``best`` of every panel; return the summary paragraph."""
    for p in panels:
        key, line = headline(p)
        p.badge = BADGES[key]
        p.text = line + ": " + "; ".join(reasons(p, label, contrast))
        p.best = False
    order = sorted(range(len(panels)), key=lambda i: -panels[i].score)
    ok = [i for i in order if eligible(panels[i])]
    tier = "believe"
    if not ok:
        ok, tier = [i for i in order if supported(panels[i])], "supported"
    if not ok:
        return _no_best(panels, order, label)
    best = ok[0]
    panels[best].best = True
    name = lambda i: f"{panels[i].method} @ {panels[i].depth}"  # noqa: E731
    p = panels[best]
    score = f"LeRF−MoRF {p.score:+.2f} [{p.low:+.2f}, {p.high:+.2f}]"
    lines = [f"Believe {name(best)} for {label} ({score})." if tier == "believe" else
             f"Best supported for {label}: {name(best)} ({score}). It passes the class, sanity "
             "and stability checks and beats the random maps, but removing cells in the order "
             "of a plain edge map hurts the logit as much: on this picture removal cannot tell "
             "the map from the outlines, so take it as the best available, not as proven."]
    if len(ok) > 1:
        low, _ = bootstrap(vals[best] - vals[ok[1]], w, seed=seed)
        if low <= 0:
            lines.append(f"It is not distinguishable from {name(ok[1])} (their paired interval "
                         "includes 0).")
    top = order[0]
    if top != best:
        lines.append(f"{name(top)} scores higher, but it {panels[top].text.split(':')[0]}.")
    failing = [name(i) for i in order if panels[i].faithful and panels[i].model_sensitive is False]
    if failing and top == best:
        lines.append("Faithful but failing the sanity check: " + ", ".join(failing) + ".")
    return " ".join(lines)


def _no_best(panels: Sequence[PanelVerdict], order: list[int], label: str) -> str:
    """The summary when no panel is marked best: the top score and why it is not believed."""
    name = lambda i: f"{panels[i].method} @ {panels[i].depth}"  # noqa: E731
    top = order[0]
    lines = [f"No panel passes the class, sanity and stability checks while beating the random "
             f"maps for {label}, so none is marked best; the highest score is {name(top)} "
             f"({panels[top].text.split(':')[0]})."]
    if not any(p.faithful for p in panels):
        rest = [name(i) for i in order if checked(panels[i])]
        lines.append("Removing cells in any map's order changes the logit about as much as in a "
                     "baseline's: the evidence is spread over the image (an object filling the "
                     "frame, texture), so this test cannot rank the maps here."
                     + (" Class-, model-sensitive and stable: " + ", ".join(rest) + "."
                        if rest else ""))
    return " ".join(lines)
