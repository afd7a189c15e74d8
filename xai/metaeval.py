"""Meta-evaluation: which perturbation protocol agrees with a known answer?

Known-answer set: two objects side by side on a white square sheet, the model explained for
one of them (the target on either side); and a harder set (:func:`hard_scene`): two small
objects (a tenth of the picture each), placed apart or touching, on a textured photograph.
For each case six maps whose order is known:

* ``object``: exactly the target object's square (the right answer);
* ``complement``: everything but the object; ``other``: the other object's square;
* ``shifted``: the object map moved by half its width towards the other object;
* ``edges``: a Sobel edge map of the input; ``blob``: a centred Gaussian blob.

A protocol *agrees* on a case when it scores ``object`` above ``complement`` and above
``other`` (and we report every other pair). Stability: Spearman rank correlation of the six
maps' scores between two seeds (tie order, ROAD noise) and between 16 and 8 steps (every other
step of the same curve). On a random-weight model the object map should have no advantage.
In the spirit of Hedström et al. 2023 (MetaQuantus) and Tomsett et al. 2020 (sanity checks
for saliency metrics); the set and the scoring are ours.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from .faithfulness import sobel_map
from .perturbation import FILLS, SCORES, RemovalCurves, removal_curves
from .sanity import spearman

KNOWN_MAPS = ("object", "complement", "other", "shifted", "edges", "blob")
PATCHES = (1, 16)


def composite(left: Image.Image, right: Image.Image, side: int = 224) -> Image.Image:
    """Two square objects side by side, vertically centred on a white (2 side)^2 sheet."""
    sheet = Image.new("RGB", (2 * side, 2 * side), (255, 255, 255))
    for k, img in enumerate((left, right)):
        sheet.paste(ImageOps.fit(img.convert("RGB"), (side, side), Image.BICUBIC),
                    (k * side, side // 2))
    return sheet


def peak_in_half(cam: np.ndarray, left: bool) -> bool:
    """Does the map's maximum lie in the left (or right) half? A flat map points nowhere."""
    if float(cam.max() - cam.min()) < 1e-6:
        return False
    return bool((np.unravel_index(int(np.argmax(cam)), cam.shape)[1] < cam.shape[1] / 2) == left)


Box = tuple[float, float, float]  # (top, left, side) as fractions of the square sheet
HARD_SIDE = 0.32  # each object's side on a hard sheet: about a tenth of its area
HARD_LAYOUTS: tuple[tuple[Box, Box], ...] = (  # (target, other): apart, diagonal, touching
    ((0.06, 0.06, HARD_SIDE), (0.60, 0.60, HARD_SIDE)),
    ((0.58, 0.10, HARD_SIDE), (0.12, 0.56, HARD_SIDE)),
    ((0.34, 0.18, HARD_SIDE), (0.34, 0.50, HARD_SIDE)),
    ((0.10, 0.50, HARD_SIDE), (0.42, 0.18, HARD_SIDE)))


def hard_scene(target: Image.Image, other: Image.Image, background: Image.Image,
               boxes: tuple[Box, Box], side: int = 448) -> Image.Image:
    """Two small square objects at ``boxes`` on ``background`` (cropped to a square)."""
    sheet = ImageOps.fit(background.convert("RGB"), (side, side), Image.BICUBIC)
    for img, (top, left, size) in zip((target, other), boxes):
        n = round(size * side)
        sheet.paste(ImageOps.fit(img.convert("RGB"), (n, n), Image.BICUBIC),
                    (round(left * side), round(top * side)))
    return sheet


def box_mask(size: tuple[int, int], box: Box) -> torch.Tensor:
    """(H, W) 0/1 mask of a square ``box`` (fractions of the sheet) at ``size``."""
    h, w = size
    top, left, side = box
    m = torch.zeros(h, w)
    t, le = round(top * h), round(left * w)
    m[t:t + round(side * h), le:le + round(side * w)] = 1
    return m


def half_box(size: tuple[int, int], left: bool) -> torch.Tensor:
    """(H, W) 0/1 mask of one object's square on a :func:`composite` sheet at ``size``."""
    return box_mask(size, (0.25, 0.0 if left else 0.5, 0.5))


def known_maps(x: torch.Tensor, left: bool, boxes: tuple[Box, Box] | None = None
               ) -> torch.Tensor:
    """The six :data:`KNOWN_MAPS` (6, H, W) for the target on the left (or right) of ``x``,
    or at the first of ``boxes`` (target, other) on a :func:`hard_scene`."""
    h, w = x.shape[-2:]
    if boxes is None:
        obj, other = half_box((h, w), left), half_box((h, w), not left)
        shift = w // 4 if left else -(w // 4)
    else:
        obj, other = box_mask((h, w), boxes[0]), box_mask((h, w), boxes[1])
        toward = 1 if boxes[1][1] >= boxes[0][1] else -1
        shift = toward * round(boxes[0][2] * w / 2)
    shifted = torch.roll(obj, shifts=shift, dims=1)
    yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2,
                            indexing="ij")
    blob = torch.exp(-(xx**2 + yy**2) / (2 * (w / 6) ** 2))
    return torch.stack([obj, 1 - obj, other, shifted, sobel_map(x), blob])


@dataclass
class Case:
    """One known-answer case: the model input, the target class and its side."""

    name: str
    x: torch.Tensor
    target: int
    left: bool
    boxes: tuple[Box, Box] | None = None  # (target, other) on a hard scene

    def maps(self) -> torch.Tensor:
        """The six known-answer maps of this case."""
        return known_maps(self.x, self.left, self.boxes)


def build_cases(model, objects: dict[str, tuple[Image.Image, int]],
                pairs: Sequence[tuple[str, str]] | None = None) -> list[Case]:
    """Both targets of every sheet; by default every pair once, sides alternating."""
    from .engine import explain

    if pairs is None:
        pairs = [(a, b) if k % 2 == 0 else (b, a)
                 for k, (a, b) in enumerate(itertools.combinations(objects, 2))]
    cases = []
    for a, b in pairs:
        r = explain(model, composite(objects[a][0], objects[b][0]), ["gradcam"], ["last"],
                    targets=[objects[a][1], objects[b][1]], fit="full")
        cases.append(Case(f"{a}|{b}→{a}", r.input, objects[a][1], True))
        cases.append(Case(f"{a}|{b}→{b}", r.input, objects[b][1], False))
    return cases


def build_hard_cases(model, objects: dict[str, tuple[Image.Image, int]],
                     pairs: Sequence[tuple[str, str]], background: Image.Image) -> list[Case]:
    """Both targets of every pair on :func:`hard_scene` sheets, cycling through
    :data:`HARD_LAYOUTS` (each object takes the target's box once)."""
    from .engine import explain

    cases = []
    for k, (a, b) in enumerate(pairs):
        layout = HARD_LAYOUTS[k % len(HARD_LAYOUTS)]
        for tgt, oth in ((a, b), (b, a)):
            sheet = hard_scene(objects[tgt][0], objects[oth][0], background, layout)
            r = explain(model, sheet, ["gradcam"], ["last"], targets=[objects[tgt][1]],
                        fit="full")
            left = layout[0][1] + layout[0][2] / 2 < 0.5
            cases.append(Case(f"{tgt}|{oth}→{tgt} (small)", r.input, objects[tgt][1], left,
                              layout))
    return cases


def variant_name(patch: int, fill: str, score: str, steps: int) -> str:
    unit = "pixel" if patch == 1 else f"{patch}px patch"
    return f"{unit}, {fill} fill, {score.upper()}, {steps} steps"


def _agreement(s: np.ndarray) -> dict[str, float]:
    """Per case (rows) of known-map scores: does ``object`` beat each other map?"""
    out = {f"> {k}": float(np.mean(s[:, 0] > s[:, j])) for j, k in enumerate(KNOWN_MAPS) if j}
    out["agree"] = float(np.mean((s[:, 0] > s[:, 1]) & (s[:, 0] > s[:, 2])))
    return out


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    vals = [spearman(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(a, b)]
    return float(np.mean([v for v in vals if v is not None] or [np.nan]))


def _subsample(c: RemovalCurves) -> RemovalCurves:
    """The same curves at every other step (16 -> 8 steps)."""
    pick = lambda d: {o: v[:, ::2] for o, v in d.items()}  # noqa: E731
    return RemovalCurves(c.fractions[::2], pick(c.logit), pick(c.prob), c.forwards, c.batches,
                         c.seconds)


def meta_evaluate(model, cases: Sequence[Case], *, patches: Sequence[int] = PATCHES,
                  fills: Sequence[str] = FILLS, n_steps: int = 16, seeds: tuple[int, int] = (0, 1),
                  seed_cases: int | None = None, readout: str = "logit",
                  progress=None) -> list[dict]:
    """One row per variant (patch x fill x score x steps): agreement with the known answer,
    seed and step rank stability. ``seed_cases`` limits the second-seed run to that many cases
    (it costs as much again)."""
    rows = []
    n_seed = len(cases) if seed_cases is None else seed_cases
    for patch, fill in itertools.product(patches, fills):
        full, half, second = [], [], []
        for i, case in enumerate(cases):
            maps = case.maps()
            c = removal_curves(model, case.x, maps, case.target, patch=patch, fill=fill,
                               n_steps=n_steps, seed=seeds[0])
            full.append(c)
            half.append(_subsample(c))
            if i < n_seed:
                second.append(removal_curves(model, case.x, maps, case.target, patch=patch,
                                             fill=fill, n_steps=n_steps, seed=seeds[1]))
            if progress:
                progress(f"{patch}px {fill}: case {i + 1}/{len(cases)}")
        for score in SCORES:
            s16 = np.stack([c.scores(score, readout) for c in full])
            s8 = np.stack([c.scores(score, readout) for c in half])
            s2 = np.stack([c.scores(score, readout) for c in second])
            for steps, s in ((n_steps, s16), (n_steps // 2, s8)):
                row = {"variant": variant_name(patch, fill, score, steps), "patch": patch,
                       "fill": fill, "score": score, "steps": steps, "cases": len(s),
                       **_agreement(s),
                       "margin": float(np.mean(s[:, 0] - np.maximum(s[:, 1], s[:, 2]))),
                       "seed_rho": _rank_corr(s16[:n_seed], s2) if steps == n_steps else None,
                       "steps_rho": _rank_corr(s16, s8)}
                rows.append(row)
    return rows


def random_model_margin(model, cases: Sequence[Case], patch: int, fill: str, score: str,
                        n_steps: int = 16) -> dict[str, float]:
    """On a random-weight model: how often the object map still wins, and its mean margin."""
    s = np.stack([removal_curves(model, c.x, c.maps(), c.target, patch=patch,
                                 fill=fill, n_steps=n_steps).scores(score) for c in cases])
    return {"agree": _agreement(s)["agree"],
            "margin": float(np.mean(s[:, 0] - np.maximum(s[:, 1], s[:, 2])))}


def markdown(rows: Sequence[dict], chosen: str | None = None) -> str:
    """The variant table, best agreement first; the chosen protocol in bold."""
    keys = ["> complement", "> other", "> shifted", "> edges", "> blob"]
    lines = ["| protocol | agrees (obj > compl. & other) ↑ | " + " | ".join(keys)
             + " | margin | seed ρ ↑ | 16 vs 8 steps ρ ↑ |", "|---" * (len(keys) + 5) + "|"]
    fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    for r in sorted(rows, key=lambda r: (-r["agree"], -(r["seed_rho"] or 0))):
        name = f"**{r['variant']}**" if r["variant"] == chosen else r["variant"]
        lines.append(f"| {name} | {r['agree']:.0%} | " + " | ".join(f"{r[k]:.0%}" for k in keys)
                     + f" | {r['margin']:+.2f} | {fmt(r['seed_rho'])} | {fmt(r['steps_rho'])} |")
    return "\n".join(lines)
