"""The resumable Parquet manifest: a folder of Parquet parts, one row per image x target.

Each chunk of rows is written to a hidden temporary file and renamed into place, so a killed
run leaves only whole parts; a resumed run reads the image ids of every part and skips them.
``run.json`` beside it holds the settings; resuming with other settings is refused.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from .datasets import DatasetError

MANIFEST_DIR = "manifest.parquet"
RUN_FILE = "run.json"
PANEL_STATS = {"peak_x": "int32", "peak_y": "int32", "energy": "float32", "hit": "bool"}
FAITH_STATS = {"deletion": "float32", "insertion": "float32"}


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("dataset runs write Parquet: pip install 'xai-cam[datasets]' "
                           "(pyarrow)") from None
    return pa, pq


def panel_names(methods, depths) -> list[tuple[str, str]]:
    """(method, depth) of every panel, in the rows' column order (depth-major)."""
    return [(m, d) for d in depths for m in methods]


def schema(methods, depths, faithfulness: bool):
    """The manifest's Arrow schema for these canonical method names and depths."""
    pa, _ = _pa()
    cols = [("image_id", pa.string()), ("path", pa.string()), ("status", pa.string()),
            ("error", pa.string()), ("gt_labels", pa.list_(pa.string())),
            ("n_boxes", pa.int32()), ("width", pa.int32()), ("height", pa.int32()),
            ("box", pa.list_(pa.int32())), ("rank", pa.int32()), ("target", pa.int32()),
            ("target_label", pa.string()), ("target_prob", pa.float32()),
            ("target_source", pa.string()), ("mask_label", pa.string()),
            ("top5", pa.list_(pa.int32())), ("top5_labels", pa.list_(pa.string())),
            ("top5_probs", pa.list_(pa.float32())), ("pointing_skipped", pa.bool_()),
            ("difficult", pa.bool_())]
    cols += [(f"layer|{d}", pa.string()) for d in depths]
    stats = dict(PANEL_STATS, **(FAITH_STATS if faithfulness else {}))
    for m, d in panel_names(methods, depths):
        cols += [(f"{m}|{d}|{k}", getattr(pa, t)() if t != "bool" else pa.bool_())
                 for k, t in stats.items()]
    cols += [("map", pa.list_(pa.uint8())), ("seconds", pa.float32())]
    return pa.schema(cols)


def to_table(rows: list[dict], sch):
    """Rows (dicts; missing keys are null) as an Arrow table of ``sch``."""
    pa, _ = _pa()
    return pa.Table.from_pylist([{k: r.get(k) for k in sch.names} for r in rows], schema=sch)


class ManifestWriter:
    """Appends chunks of rows as atomically renamed Parquet parts."""

    def __init__(self, folder: Path, sch):
        self.folder, self.schema = Path(folder), sch
        self.folder.mkdir(parents=True, exist_ok=True)
        self.parts = len(list(self.folder.glob("*.parquet")))

    def write(self, rows: list[dict]) -> Path | None:
        if not rows:
            return None
        _, pq = _pa()
        name = f"part-{self.parts:05d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(to_table(rows, self.schema), tmp)
        os.replace(tmp, self.folder / name)
        self.parts += 1
        return self.folder / name


def part_files(folder: Path) -> list[Path]:
    """The committed parts (hidden temporary files of a killed run are not parts)."""
    folder = Path(folder)
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


def done_ids(folder: Path) -> set[str]:
    """The image ids already in the manifest (explained or logged as errors)."""
    _, pq = _pa()
    done: set[str] = set()
    for p in part_files(folder):
        done.update(pq.read_table(p, columns=["image_id"]).column(0).to_pylist())
    return done


def read_manifest(out: Path):
    """The whole manifest as one Arrow table, sorted by image id and target rank."""
    pa, pq = _pa()
    folder = Path(out) / MANIFEST_DIR if (Path(out) / MANIFEST_DIR).is_dir() else Path(out)
    parts = part_files(folder)
    if not parts:
        raise DatasetError(f"{folder}: no manifest parts")
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    return table.sort_by([("image_id", "ascending"), ("rank", "ascending")])


def check_run(out: Path, settings: dict) -> None:
    """Write ``run.json``, or refuse to resume a run made with other settings."""
    path = Path(out) / RUN_FILE
    if path.exists():
        before = json.loads(path.read_text())
        if before != json.loads(json.dumps(settings)):
            diff = sorted(k for k in set(before) | set(settings)
                          if before.get(k) != json.loads(json.dumps(settings)).get(k))
            raise DatasetError(f"{out} holds a run with other settings ({', '.join(diff)}); "
                               "use the same settings to resume, or another --out")
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))
