"""Dataset input: a folder, a glob, a CSV or JSONL list, Pascal VOC XML or a COCO JSON file.

Every reader gives :class:`Sample` objects: an id (the image path as read), the path, the
annotated labels and boxes. Boxes are half-open pixel rectangles ``[x0, x1) x [y0, y1)`` in
the original image; VOC's 1-based inclusive ``xmin..xmax`` becomes ``[xmin - 1, xmax)``, COCO's
``[x, y, w, h]`` becomes ``[x, x + w)``. COCO polygons are kept for exact masks.
"""

from __future__ import annotations

import csv
import glob
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import XaiError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm",
                  ".ico", ".avif", ".mpo"}
DATASET_SUFFIXES = {".csv", ".jsonl", ".json", ".xml"}
PATH_KEYS = ("path", "image", "file", "filename", "file_name")
BOX_KEYS = (("x0", "y0", "x1", "y1"), ("xmin", "ymin", "xmax", "ymax"))


class DatasetError(XaiError, ValueError):
    """A dataset file or folder that cannot be read (missing, malformed, no images)."""


@dataclass(frozen=True)
class Box:
    """One annotated object: a half-open pixel rectangle, its label, VOC's difficult flag and,
    for COCO, its polygons (flat x, y lists)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = ""
    difficult: bool = False
    polygons: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class Sample:
    """One image to explain and what is known about it."""

    id: str
    path: str
    labels: tuple[str, ...] = ()
    boxes: tuple[Box, ...] = field(default=())
    mask: str | None = None  # a mask image: non-zero pixels are the object

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Sample:
        boxes = tuple(Box(**{**b, "polygons": tuple(tuple(p) for p in b.get("polygons", ()))})
                      for b in d.get("boxes", ()))
        return cls(d["id"], d["path"], tuple(d.get("labels", ())), boxes, d.get("mask"))


def is_dataset_input(item: str) -> bool:
    """True for a folder, a glob pattern or a CSV/JSONL/JSON/XML file (not a single image)."""
    p = Path(item)
    return p.is_dir() or any(c in item for c in "*?[") or p.suffix.lower() in DATASET_SUFFIXES


def read_samples(inputs: Sequence[str], image_root: str | Path | None = None) -> list[Sample]:
    """Every sample of every input, in input order; a repeated id keeps its first sample."""
    seen: dict[str, Sample] = {}
    for item in inputs:
        for s in _read_one(str(item), image_root):
            seen.setdefault(s.id, s)
    if not seen:
        raise DatasetError(f"no images found in {', '.join(map(str, inputs))[:200]}")
    return list(seen.values())


def _read_one(item: str, image_root) -> Iterable[Sample]:
    p = Path(item)
    suffix = p.suffix.lower()
    if p.is_dir():
        if (p / "Annotations").is_dir():
            return read_voc(sorted((p / "Annotations").glob("*.xml")), image_root)
        return [Sample(str(f), str(f)) for f in sorted(p.rglob("*")) if _is_image(f)]
    if any(c in item for c in "*?[") and not p.exists():
        found = [Path(f) for f in sorted(glob.glob(item, recursive=True))]
        return [Sample(str(f), str(f)) for f in found if _is_image(f)]
    if not p.is_file():
        raise DatasetError(f"{item}: no such file or folder")
    readers = {".csv": read_csv, ".jsonl": read_jsonl, ".json": read_coco}
    if suffix == ".xml":
        return read_voc([p], image_root)
    if suffix in readers:
        return readers[suffix](p, image_root)
    return [Sample(str(p), str(p))]


def _is_image(f: Path) -> bool:
    return f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES


def _resolve(path: str, base: Path, image_root) -> str:
    p = Path(path)
    if p.is_absolute():
        return str(p)
    return str(Path(image_root) / p if image_root else base / p)


def _float(value, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {str(value)[:40]!r} is not a number") from None


def _box(values, label: str, where: str, difficult: bool = False) -> Box:
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        raise DatasetError(f"{where}: a box is [x0, y0, x1, y1], not {str(values)[:60]}")
    x0, y0, x1, y1 = (_float(v, where) for v in values)
    if not (x1 > x0 and y1 > y0):
        raise DatasetError(f"{where}: empty box {[x0, y0, x1, y1]}")
    return Box(x0, y0, x1, y1, label, difficult)


class _Builder:
    """Collects labels and boxes per image path (CSV rows and JSONL lines may repeat a path)."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    def add(self, path: str, labels: Iterable[str] = (), boxes: Iterable[Box] = (),
            mask: str | None = None) -> None:
        item = self.items.setdefault(path, {"labels": [], "boxes": [], "mask": None})
        item["labels"] += [lb for lb in labels if lb and lb not in item["labels"]]
        item["boxes"] += list(boxes)
        item["mask"] = item["mask"] or mask

    def samples(self) -> list[Sample]:
        return [Sample(p, p, tuple(v["labels"]), tuple(v["boxes"]), v["mask"])
                for p, v in self.items.items()]


def read_csv(path: Path, image_root=None) -> list[Sample]:
    """A CSV with a header: ``path`` (or image/file), optional ``label``, ``x0,y0,x1,y1`` (or
    ``xmin..ymax``), ``difficult`` and ``mask``; rows repeating a path add objects."""
    build = _Builder()
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        key = next((cols[k] for k in PATH_KEYS if k in cols), None)
        if key is None:
            raise DatasetError(f"{path}: needs a 'path' column; it has {list(cols)[:10]}")
        names = next((n for n in BOX_KEYS if all(c in cols for c in n)), None)
        for i, row in enumerate(reader, 2):
            where = f"{path}:{i}"
            label = (row.get(cols.get("label", ""), "") or "").strip()
            boxes = []
            if names and any((row.get(cols[c]) or "").strip() for c in names):
                difficult = str(row.get(cols.get("difficult", ""), "")).strip() in {"1", "true"}
                boxes = [_box([row[cols[c]] for c in names], label, where, difficult)]
            mask = (row.get(cols.get("mask", ""), "") or "").strip() or None
            build.add(_resolve(row[key].strip(), path.parent, image_root), [label], boxes,
                      mask and _resolve(mask, path.parent, image_root))
    return build.samples()


def read_jsonl(path: Path, image_root=None) -> list[Sample]:
    """One JSON object per line: ``path``, optional ``label`` or ``labels``, ``boxes`` (lists
    ``[x0, y0, x1, y1]`` or objects with ``box``, ``label``, ``difficult``) and ``mask``."""
    build = _Builder()
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not JSON ({exc.msg})") from None
        key = next((k for k in PATH_KEYS if isinstance(obj, dict) and k in obj), None)
        if key is None:
            raise DatasetError(f"{where}: needs a 'path' key")
        labels = [str(x) for x in obj.get("labels", [])] or [str(obj.get("label") or "")]
        boxes = []
        for b in obj.get("boxes", []):
            if isinstance(b, dict):
                boxes.append(_box(b.get("box"), str(b.get("label") or labels[0]), where,
                                  bool(b.get("difficult", False))))
            else:
                boxes.append(_box(b, labels[0], where))
        mask = obj.get("mask")
        build.add(_resolve(str(obj[key]), path.parent, image_root),
                  labels + [b.label for b in boxes], boxes,
                  mask and _resolve(str(mask), path.parent, image_root))
    return build.samples()


def read_voc(files: Sequence[Path], image_root=None) -> list[Sample]:
    """Pascal VOC XML annotations; images in ``../JPEGImages/`` (or ``image_root``)."""
    out = []
    for f in files:
        try:
            root = ET.parse(f).getroot()
        except (ET.ParseError, OSError) as exc:
            raise DatasetError(f"{f}: not a VOC annotation ({exc})") from None
        name = (root.findtext("filename") or f.stem + ".jpg").strip()
        folder = Path(image_root) if image_root else f.parent.parent / "JPEGImages"
        image = folder / name if (folder / name).exists() else f.parent / name
        boxes = []
        for obj in root.iter("object"):
            bb, label = obj.find("bndbox"), (obj.findtext("name") or "").strip()
            if bb is None:
                continue
            xmin, ymin, xmax, ymax = (_float(bb.findtext(k), str(f))
                                      for k in ("xmin", "ymin", "xmax", "ymax"))
            difficult = (obj.findtext("difficult") or "0").strip() == "1"
            boxes.append(Box(xmin - 1, ymin - 1, xmax, ymax, label, difficult))
        labels = tuple(dict.fromkeys(b.label for b in boxes))
        out.append(Sample(str(image), str(image), labels, tuple(boxes)))
    return out


def read_coco(path: Path, image_root=None) -> list[Sample]:
    """A COCO detection/instances JSON: images, annotations (bbox, polygons), categories."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = {int(im["id"]): im for im in data["images"]}
        names = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: not a COCO annotation file ({exc!r:.80})") from None
    per_image: dict[int, list[Box]] = {i: [] for i in images}
    for ann in data.get("annotations", []):
        x, y, w, h = (_float(v, str(path)) for v in ann["bbox"])
        if w <= 0 or h <= 0 or int(ann["image_id"]) not in per_image:
            continue
        seg = ann.get("segmentation")
        polys = tuple(tuple(float(v) for v in p) for p in seg) if isinstance(seg, list) else ()
        label = names.get(int(ann["category_id"]), str(ann["category_id"]))
        per_image[int(ann["image_id"])].append(Box(x, y, x + w, y + h, label, False, polys))
    out = []
    for i, im in images.items():
        image = _resolve(str(im["file_name"]), path.parent, image_root)
        labels = tuple(dict.fromkeys(b.label for b in per_image[i]))
        out.append(Sample(image, image, labels, tuple(per_image[i])))
    return out
