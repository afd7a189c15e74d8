"""A small annotated set for the dataset tests: composites of the examples with known boxes."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from conftest import EXAMPLES
from PIL import Image

OBJECTS = (("tabby", "cat.png"), ("espresso", "coffee.png"))


def make_set(root: Path, n: int, size: tuple[int, int] = (200, 128), side: int = 60,
             seed: int = 0) -> list[dict]:
    """``n`` grey canvases with the cat and/or the coffee pasted at random places; writes
    ``list.jsonl`` and returns its records (boxes are half-open pixel rectangles)."""
    root.mkdir(parents=True, exist_ok=True)
    pics = {lb: Image.open(EXAMPLES / f).convert("RGB").resize((side, side)) for lb, f in OBJECTS}
    rng = random.Random(seed)
    w, h = size
    records = []
    for i in range(n):
        canvas = Image.new("RGB", size, (rng.randrange(90, 170),) * 3)
        chosen = list(OBJECTS)
        rng.shuffle(chosen)
        boxes = []
        for j, (label, _) in enumerate(chosen[: 1 + i % 2]):
            half = w // 2
            x0 = j * half + rng.randrange(0, half - side + 1)
            y0 = rng.randrange(0, h - side + 1)
            canvas.paste(pics[label], (x0, y0))
            boxes.append({"box": [x0, y0, x0 + side, y0 + side], "label": label})
        name = f"img{i:03d}.png"
        canvas.save(root / name)
        records.append({"path": name, "boxes": boxes})
    (root / "list.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def write_voc(root: Path, images: Path, records: list[dict],
              difficult: frozenset[int] = frozenset()) -> Path:
    """The same set as Pascal VOC: ``Annotations/*.xml`` and ``JPEGImages/`` (copied from
    ``images``); objects of the records numbered in ``difficult`` are VOC-difficult."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    for i, r in enumerate(records):
        shutil.copy(images / r["path"], root / "JPEGImages" / r["path"])
        objs = "".join(
            f"<object><name>{b['label']}</name><difficult>{int(i in difficult)}</difficult>"
            f"<bndbox><xmin>{b['box'][0] + 1}</xmin><ymin>{b['box'][1] + 1}</ymin>"
            f"<xmax>{b['box'][2]}</xmax><ymax>{b['box'][3]}</ymax></bndbox></object>"
            for b in r["boxes"])
        stem = Path(r["path"]).stem
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{r['path']}</filename>{objs}</annotation>")
    return root
