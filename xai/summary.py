"""Dataset-level numbers from a manifest: class counts, per method x depth pointing accuracy and
energy with bootstrap 95 % confidence intervals, faithfulness, mean maps per predicted class and
the images where the methods disagree most.

Pointing accuracy is TorchRay's: the mean over annotated classes of ``hits / (hits + misses)``
(skipped pairs excluded); ``all`` is over every scored pair, ``difficult`` over EBP's difficult
pairs. Confidence intervals: percentile bootstrap over the manifest's rows (1000 resamples, a
fixed seed), recomputing the same statistic.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from .manifest import RUN_FILE, read_manifest

BOOTSTRAP, SEED = 1000, 0


def _col(table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else []


def bootstrap(values: np.ndarray, groups: np.ndarray | None = None, n: int = BOOTSTRAP,
              seed: int = SEED) -> dict:
    """Mean of ``values`` (per-group mean of means when ``groups`` is given) and its
    percentile-bootstrap 95 % interval."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"n": 0, "mean": None, "ci": [None, None]}
    if groups is None:
        groups = np.zeros(values.size, dtype=np.int64)
    k = int(groups.max()) + 1
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, n, 100):  # 100 resamples at a time bound the memory
        idx = rng.integers(0, values.size, (min(100, n - start), values.size))
        stats.append(_group_mean(values[idx], groups[idx], k))
    boot = np.concatenate(stats)
    point = _group_mean(values[None], groups[None], k)[0]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"n": int(values.size), "mean": float(point), "ci": [float(lo), float(hi)]}


def _group_mean(v: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    """(B, n) values and groups -> (B,) mean over groups of each group's mean."""
    b = v.shape[0]
    flat = (g + k * np.arange(b)[:, None]).ravel()
    sums = np.bincount(flat, weights=v.ravel(), minlength=b * k).reshape(b, k)
    counts = np.bincount(flat, minlength=b * k).reshape(b, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(counts > 0, sums / counts, np.nan), axis=1)


def panels(table, methods: list[str], depths: list[str]) -> list[dict]:
    """Per method x depth: pointing (all, difficult), energy and faithfulness with CIs."""
    ok = np.array([s == "ok" for s in _col(table, "status")])
    cls = [lb or "*" for lb in _col(table, "mask_label")]
    codes = {c: i for i, c in enumerate(sorted(set(cls)))}
    group = np.array([codes[c] for c in cls], dtype=np.int64)
    difficult = np.array([bool(d) for d in _col(table, "difficult")])
    out = []
    for d in depths:
        for m in methods:
            key = f"{m}|{d}|"
            hit = np.array([np.nan if h is None else float(h) for h in _col(table, key + "hit")])
            scored = ok & ~np.isnan(hit)
            entry = {"method": m, "depth": d,
                     "pointing": bootstrap(hit[scored], group[scored]),
                     "pointing_difficult": bootstrap(hit[scored & difficult],
                                                     group[scored & difficult]),
                     "pointing_pairs": bootstrap(hit[scored])}
            for stat in ("energy", "deletion", "insertion"):
                vals = np.array([np.nan if v is None else v for v in _col(table, key + stat)],
                                dtype=np.float64)
                if vals.size:
                    entry[stat] = bootstrap(vals[ok & ~np.isnan(vals)])
            out.append(entry)
    return out


def class_maps(table, top: int = 12) -> list[dict]:
    """The mean thumbnail map of the rank-0 rows per top-1 predicted class (most frequent)."""
    groups: dict[str, list] = {}
    for rank, status, top5, m in zip(_col(table, "rank"), _col(table, "status"),
                                     _col(table, "top5_labels"), _col(table, "map")):
        if status == "ok" and rank == 0 and m:
            groups.setdefault(top5[0], []).append(m)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    out = []
    for label, maps in ranked:
        arr = np.asarray(maps, dtype=np.float64) / 255.0
        side = int(round(np.sqrt(arr.shape[1])))
        out.append({"label": label, "n": len(maps),
                    "map": np.round(arr.mean(0).reshape(side, side), 4).tolist()})
    return out


def disagreement(table, methods: list[str], depth: str, top: int = 8) -> list[dict]:
    """Images whose methods' peaks lie furthest apart at ``depth`` (mean pairwise distance
    over the image diagonal), rank-0 rows."""
    rows = table.to_pylist()
    found = []
    for r in rows:
        if r["status"] != "ok" or r["rank"] != 0 or len(methods) < 2:
            continue
        pts = np.array([[r[f"{m}|{depth}|peak_x"], r[f"{m}|{depth}|peak_y"]] for m in methods],
                       dtype=np.float64)
        diff = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
        pairs = diff[np.triu_indices(len(methods), 1)]
        score = float(pairs.mean() / np.hypot(r["width"], r["height"]))
        found.append({"image_id": r["image_id"], "path": r["path"], "score": round(score, 4),
                      "target_label": r["target_label"], "width": r["width"],
                      "height": r["height"], "depth": depth, "boxes_label": r["mask_label"],
                      "peaks": {m: [int(p[0]), int(p[1])] for m, p in zip(methods, pts)}})
    return sorted(found, key=lambda e: (-e["score"], e["image_id"]))[:top]


def summarise(out: Path) -> dict:
    """Every number of the report for the run in ``out``."""
    table = read_manifest(out)
    settings = json.loads((Path(out) / RUN_FILE).read_text())
    layer_cols = [c for c in table.column_names if c.startswith("layer|")]
    depths = [c.split("|", 1)[1] for c in layer_cols]
    methods = list(dict.fromkeys(c.split("|")[0] for c in table.column_names
                                 if c.endswith("|peak_x")))
    status = _col(table, "status")
    ids = _col(table, "image_id")
    errors = sorted({(i, e) for i, s, e in zip(ids, status, _col(table, "error")) if s != "ok"})
    ok_rank0 = [i for i, (s, r) in enumerate(zip(status, _col(table, "rank")))
                if s == "ok" and r == 0]
    top1 = [_col(table, "top5_labels")[i][0] for i in ok_rank0]
    gt_per_image: Counter = Counter()
    seen = set()
    for i, labels in zip(ids, _col(table, "gt_labels")):
        if i not in seen:
            seen.add(i)
            gt_per_image.update(set(labels or []) - {""})
    first_row = {c: table.column(c)[0].as_py() for c in layer_cols} if table.num_rows else {}
    return {
        "model": settings.get("model"), "settings": settings,
        "images": len(set(ids)), "rows": table.num_rows, "errors": len(errors),
        "error_examples": [{"image_id": i, "error": e} for i, e in errors[:20]],
        "layers": {c.split("|", 1)[1]: v for c, v in first_row.items()},
        "class_distribution": {"annotated": dict(gt_per_image.most_common()),
                               "predicted": dict(Counter(top1).most_common())},
        "panels": panels(table, methods, depths),
        "class_maps": class_maps(table),
        "disagreement": disagreement(table, methods, depths[-1]) if depths else [],
        "bootstrap": {"resamples": BOOTSTRAP, "seed": SEED, "interval": "percentile 95 %"},
    }
