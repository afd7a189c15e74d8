"""Batched dataset explanation: decode (in DataLoader workers or Ray actors), one batched pass,
per-panel statistics, one manifest row per image x target. Shared by the local and Ray paths.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .cams import DEFAULT_METHODS, get_method
from .cams import method_names as registry_names
from .datasets import Sample
from .engine import DEFAULT_DEPTHS, Explanation, Prediction
from .layers import resolve_layer
from .models import LoadedModel
from .passes import MapKey, run_pass
from .pointing import (
    TOLERANCE,
    all_difficult,
    ebp_difficult,
    energy,
    load_difficult_flags,
    object_mask,
    peak,
    pointing_hit,
)
from .postprocess import resize_map

MAP_SIZE = 24  # the per-row thumbnail map (first method, deepest depth), for class means


@dataclass
class RunOptions:
    """What a dataset run computes; a resumed run must use the same (see :meth:`key`)."""

    model: str = "efficientnet_lite0"
    pretrained: bool = True
    methods: tuple[str, ...] = tuple(DEFAULT_METHODS)
    depths: tuple[str, ...] = tuple(DEFAULT_DEPTHS)
    mode: str = "stages"
    fit: str = "full"
    targets: tuple[str, ...] | None = None
    top_k: int | None = None
    tolerance: int = TOLERANCE
    faithfulness: bool = False
    steps: int = 20
    overlays: bool = True
    out: str = "out"
    label_map: dict[str, str] = field(default_factory=dict)
    difficult_flags: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> dict:
        """The settings that change the rows (not where overlays go or whether they are drawn)."""
        return {k: v for k, v in self.to_dict().items() if k not in {"out", "overlays"}}

    @classmethod
    def from_dict(cls, d: dict) -> RunOptions:
        d = dict(d)
        for k in ("methods", "depths", "targets"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


class BatchExplainer:
    """One model, one set of options: ``rows(decoded)`` explains a batch and returns its rows."""

    def __init__(self, model: LoadedModel, opts: RunOptions):
        self.model, self.opts = model, opts
        self.methods = [get_method(n) for n in method_names(opts.methods)]
        with model.lock:
            self.layers = {d: resolve_layer(model, d, opts.mode) for d in opts.depths}
        lower = {lb.lower(): i for i, lb in enumerate(model.labels)}
        self.class_of = {k: _class_of(v, lower) for k, v in opts.label_map.items()}
        self.lower = lower
        self.flags = load_difficult_flags(opts.difficult_flags) if opts.difficult_flags else None
        self.flag_stems = {s for s, _ in self.flags} if self.flags else set()

    def index_of(self, label: str) -> int | None:
        """The model class an annotation label names (label map, then label, then index)."""
        if label in self.class_of:
            return self.class_of[label]
        return _class_of(label, self.lower)

    def rows(self, decoded: list[dict]) -> list[dict]:
        """Rows for a batch; a batch that fails is retried image by image (halved on OOM)."""
        good = [d for d in decoded if "error" not in d]
        out = [error_row(d["sample"], d["error"]) for d in decoded if "error" in d]
        if not good:
            return out
        try:
            return out + self._explain(good)
        except torch.cuda.OutOfMemoryError:
            if len(good) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(good) // 2
            return out + self.rows(good[:half]) + self.rows(good[half:])
        except Exception as exc:
            if len(good) == 1:
                return out + [error_row(good[0]["sample"], f"{type(exc).__name__}: {exc}")]
            return out + [r for d in good for r in self.rows([d])]

    def targets_for(self, sample: Sample) -> list[tuple[int | None, str | None, str]]:
        """(class or None for the r-th prediction, annotation label for the mask, source)."""
        if self.opts.targets:
            idx = [_class_of(t, self.lower) for t in self.opts.targets]
            return [(i, self._label_for(sample, i), "given") for i in idx if i is not None]
        found = {}
        for lb in sample.labels:
            i = self.index_of(lb)
            if i is not None and i not in found:
                found[i] = lb
        if found:
            return [(i, lb, "annotation") for i, lb in found.items()]
        return [(None, None, "top-k")] * (self.opts.top_k or 1)

    def _label_for(self, sample: Sample, idx: int) -> str | None:
        return next((lb for lb in sample.labels if self.index_of(lb) == idx), None)

    def _explain(self, good: list[dict]) -> list[dict]:
        t0 = time.perf_counter()
        samples = [Sample.from_dict(d["sample"]) for d in good]
        wanted = [self.targets_for(s) for s in samples]
        x = self.model.place(torch.stack([d["tensor"] for d in good]))
        with self.model.lock, torch.inference_mode(False):
            run = run_pass(self.model, x, list(self.layers.values()), self.methods,
                           _choose(wanted))
        probs = run.logits.float().softmax(dim=1).cpu()
        seconds = (time.perf_counter() - t0) / len(good)
        rows = []
        for i, (d, s) in enumerate(zip(good, samples)):
            for r, (_, mask_label, source) in enumerate(wanted[i]):
                cls = run.targets[r][i]
                rows.append(self._row(d, s, i, r, cls, mask_label, source, run, probs[i], x[i])
                            | {"seconds": seconds})
            if self.opts.overlays and d.get("region") is not None:
                self._overlay(d, s, i, [run.targets[r][i] for r in range(len(wanted[i]))],
                              run, probs[i])
        return rows

    def _full_map(self, cam: torch.Tensor, d: dict) -> torch.Tensor:
        """A layer map on the original image: resized to the explained region, zero outside."""
        x0, y0, x1, y1 = d["box"]
        w, h = d["size"]
        region = resize_map(cam, (y1 - y0, x1 - x0))
        if (x0, y0, x1, y1) == (0, 0, w, h):
            return region
        full = torch.zeros(h, w)
        full[y0:y1, x0:x1] = region
        return full

    def _row(self, d, s: Sample, i, r, cls, mask_label, source, run, probs, x) -> dict:
        w, h = d["size"]
        labels = self.model.labels
        top5 = probs.topk(min(5, probs.numel()))
        row = base_row(s, "ok", None) | {
            "width": w, "height": h, "box": d["box"], "rank": r, "target": int(cls),
            "target_label": labels[cls], "target_prob": float(probs[cls]),
            "target_source": source, "mask_label": mask_label,
            "top5": [int(j) for j in top5.indices], "top5_labels": [labels[int(j)]
                                                                   for j in top5.indices],
            "top5_probs": [float(p) for p in top5.values],
            **{f"layer|{dp}": info.name for dp, info in self.layers.items()}}
        mask = object_mask(s.boxes, (w, h), mask_label, s.mask) if (s.boxes or s.mask) else None
        skipped = mask_label is not None and all_difficult(s.boxes, mask_label)
        row["pointing_skipped"] = bool(skipped)
        row["difficult"] = None if mask is None else self._difficult(s, mask_label, (w, h), mask)
        maps = {}
        for dp, info in self.layers.items():
            for m in self.methods:
                cam = run.maps[MapKey(m.name, info.name, i, None if m.class_agnostic else cls)]
                full = self._full_map(cam, d).numpy()
                maps[(m.name, dp)] = cam
                px, py = peak(full)
                key = f"{m.name}|{dp}|"
                row[key + "peak_x"], row[key + "peak_y"] = px, py
                row[key + "energy"] = None if mask is None else energy(full, mask)
                row[key + "hit"] = (None if mask is None or skipped
                                    else pointing_hit(mask, (px, py), self.opts.tolerance))
                if m is self.methods[0] and dp == self.opts.depths[-1]:
                    row["map"] = thumbnail(full)
        if self.opts.faithfulness:
            row.update(self._faithfulness(maps, x, cls))
        return row

    def _difficult(self, s: Sample, label, size, mask) -> bool:
        if self.flags is not None and label is not None:
            stem = Path(s.path).stem
            return self.flags.get((stem, label), stem not in self.flag_stems)
        return label is not None and ebp_difficult(s.boxes, label, size, mask)

    def _faithfulness(self, maps: dict, x: torch.Tensor, cls: int) -> dict:
        from .faithfulness import perturbation_curves

        keys = list(maps)
        size = tuple(x.shape[-2:])
        stack = torch.stack([resize_map(maps[k], size) for k in keys])
        curves = perturbation_curves(self.model, x[None].float(), stack, cls,
                                     n_steps=self.opts.steps)
        out = {}
        for j, (m, dp) in enumerate(keys):
            out[f"{m}|{dp}|deletion"] = float(curves.deletion_auc[j])
            out[f"{m}|{dp}|insertion"] = float(curves.insertion_auc[j])
        return out

    def _overlay(self, d: dict, s: Sample, i: int, classes: list[int], run, probs) -> None:
        from .render import gallery

        labels = self.model.labels
        tg = [Prediction(c, labels[c], float(probs[c])) for c in dict.fromkeys(classes)]
        top5 = probs.topk(min(5, probs.numel()))
        names = {info.name: dp for dp, info in self.layers.items()}
        maps = {(m, names[n], c): v for (m, n, j, c), v in run.maps.items()
                if j == i and n in names}
        result = Explanation(
            model=self.model.name, image=d["region"], box=tuple(d["box"]),
            input_size=tuple(self.model.input_size),
            predictions=[Prediction(int(j), labels[int(j)], float(p))
                         for p, j in zip(top5.values, top5.indices)],
            targets=tg, methods=tuple(m.name for m in self.methods),
            depths=tuple(self.opts.depths), mode=self.opts.mode, layers=dict(self.layers),
            timings={}, passes=dict(run.passes), maps=maps, labels=list(labels))
        folder = Path(self.opts.out) / "overlays"
        folder.mkdir(parents=True, exist_ok=True)
        gallery(result).save(folder / f"{overlay_name(s.id)}.png", compress_level=1)


def method_names(methods) -> list[str]:
    """The canonical names of ``methods``, without repeats (the manifest's column prefixes)."""
    return registry_names(methods)  # the registry's: aliases, "all", "every"


def overlay_name(image_id: str) -> str:
    """A file name for an image id: its path's characters, slugged, plus a short hash."""
    import hashlib

    slug = "".join(c if c.isalnum() else "-" for c in Path(image_id).stem)[:60].strip("-")
    return f"{slug or 'image'}-{hashlib.sha1(image_id.encode()).hexdigest()[:8]}"


def _class_of(label, lower: dict[str, int]) -> int | None:
    text = str(label).strip()
    if text.isdecimal() and int(text) < len(lower):
        return int(text)
    return lower.get(text.lower())


@dataclass(frozen=True)
class _Chosen:
    """Rank ``rank`` of :func:`_choose_all` as a target of :func:`run_pass`."""

    wanted: tuple
    rank: int

    def __call__(self, logits: torch.Tensor) -> list[int]:
        return _choose_all(logits, list(self.wanted))[self.rank]


def _choose(wanted: list[list[tuple]]) -> list[_Chosen]:
    """One target per rank: each image's given class or its r-th prediction."""
    frozen = tuple(tuple(w) for w in wanted)
    return [_Chosen(frozen, r) for r in range(max(len(w) for w in wanted))]


def _choose_all(logits: torch.Tensor, wanted: list[list[tuple]]) -> list[list[int]]:
    """Per rank, per image: the given class or the image's r-th prediction; images with fewer
    targets repeat their first (the extra maps are not read)."""
    k = max(sum(c is None for c, _, _ in w) for w in wanted)
    top = logits.topk(max(k, 1), dim=1).indices.cpu().tolist()
    per_image = []
    for i, w in enumerate(wanted):
        n = 0
        classes = []
        for c, _, _ in w:
            if c is None:
                c, n = top[i][n], n + 1
            classes.append(int(c))
        per_image.append(classes)
    ranks = max(len(c) for c in per_image)
    return [[c[r] if r < len(c) else c[0] for c in per_image] for r in range(ranks)]


def thumbnail(full, size: int = MAP_SIZE) -> list[int]:
    """The map averaged down to ``size`` x ``size`` over the whole image, as uint8 values."""
    small = F.adaptive_avg_pool2d(torch.as_tensor(full)[None, None].float(), size)[0, 0]
    small = small / (small.max() + 1e-7)
    return (small * 255).round().to(torch.uint8).flatten().tolist()


def base_row(s: Sample, status: str, error: str | None) -> dict:
    return {"image_id": s.id, "path": s.path, "status": status, "error": error,
            "gt_labels": list(s.labels), "n_boxes": len(s.boxes)}


def error_row(sample: dict, error: str) -> dict:
    """The row that logs an image that could not be explained."""
    return base_row(Sample.from_dict(sample), "error", " ".join(error.split())[:300])
