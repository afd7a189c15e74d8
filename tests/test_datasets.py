"""Dataset readers and the pointing game (no model): formats, box conventions, TorchRay's test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from annotated import make_set, write_voc

from xai.datasets import Box, DatasetError, Sample, is_dataset_input, read_samples
from xai.pointing import (
    all_difficult,
    ebp_difficult,
    energy,
    load_difficult_flags,
    object_mask,
    peak,
    pointing_hit,
)


def test_folder_glob_csv_jsonl_give_the_same_images(tmp_path):
    records = make_set(tmp_path / "set", 3)
    (tmp_path / "set" / "notes.txt").write_text("not an image")
    folder = read_samples([str(tmp_path / "set")])
    assert [s.path for s in folder] == [str(tmp_path / "set" / r["path"]) for r in records]
    assert [s.id for s in read_samples([str(tmp_path / "set" / "*.png")])] == [
        s.id for s in folder]
    csv = tmp_path / "set" / "list.csv"
    lines = ["path,label,x0,y0,x1,y1"] + [f"{r['path']},{b['label']},{','.join(map(str, b['box']))}"
                                          for r in records for b in r["boxes"]]
    csv.write_text("\n".join(lines) + "\n")
    from_csv = read_samples([str(csv)])
    from_jsonl = read_samples([str(tmp_path / "set" / "list.jsonl")])
    assert from_csv == from_jsonl
    assert [s.id for s in from_csv] == [s.id for s in folder]
    second = from_jsonl[1]
    assert len(second.boxes) == 2 and set(second.labels) == {"tabby", "espresso"}
    assert second.boxes[0] == Box(*records[1]["boxes"][0]["box"], records[1]["boxes"][0]["label"])
    assert Sample.from_dict(json.loads(json.dumps(second.to_dict()))) == second


def test_voc_boxes_are_one_based_inclusive(tmp_path):
    records = make_set(tmp_path / "images", 2)
    voc = write_voc(tmp_path / "VOC", tmp_path / "images", records, difficult=frozenset({1}))
    samples = read_samples([str(voc)])
    assert samples[0].path == str(voc / "JPEGImages" / "img000.png")
    b = samples[0].boxes[0]
    assert (b.x0, b.y0, b.x1, b.y1) == tuple(float(v) for v in records[0]["boxes"][0]["box"])
    assert all(bx.difficult for bx in samples[1].boxes) and not samples[0].boxes[0].difficult
    assert read_samples([str(voc / "Annotations" / "img001.xml")])[0] == samples[1]


def test_coco_json_bbox_and_polygons(tmp_path):
    make_set(tmp_path, 1)
    coco = {"images": [{"id": 7, "file_name": "img000.png", "width": 200, "height": 128}],
            "categories": [{"id": 17, "name": "cat"}],
            "annotations": [{"image_id": 7, "category_id": 17, "bbox": [10, 20, 30, 40],
                             "segmentation": [[10, 20, 40, 20, 40, 60]]}]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    (s,) = read_samples([str(tmp_path / "instances.json")])
    assert s.labels == ("cat",) and (s.boxes[0].x1, s.boxes[0].y1) == (40.0, 60.0)
    mask = object_mask(s.boxes, (200, 128), "cat")
    assert mask[21, 38] and not mask[58, 12]  # inside the triangle; inside the box, not it
    assert 0 < mask.sum() < 30 * 40


@pytest.mark.parametrize("content, message", [
    ("name,label\na.png,cat\n", "needs a 'path' column"),
    ("path,x0,y0,x1,y1\na.png,5,5,2,9\n", "empty box"),
    ("path,x0,y0,x1,y1\na.png,5,five,9,9\n", "not a number"),
])
def test_bad_csv_is_one_clear_error(tmp_path, content, message):
    (tmp_path / "list.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_samples([str(tmp_path / "list.csv")])
    assert is_dataset_input(str(tmp_path / "list.csv"))
    assert not is_dataset_input(str(tmp_path / "a.png"))


def test_missing_input_and_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_samples([str(tmp_path / "nope.jsonl")])
    with pytest.raises(DatasetError, match="no images found"):
        read_samples([str(tmp_path)])
    (tmp_path / "bad.jsonl").write_text('{"path": "a.png"}\n{oops\n')
    with pytest.raises(DatasetError, match="bad.jsonl:2: not JSON"):
        read_samples([str(tmp_path / "bad.jsonl")])


def torchray_hit(mask: np.ndarray, point, tolerance=15) -> bool:
    """TorchRay's PointingGame.evaluate, written out over the whole image."""
    v, u = torch.meshgrid(
        (torch.arange(mask.shape[0], dtype=torch.float32) - point[1]) ** 2,
        (torch.arange(mask.shape[1], dtype=torch.float32) - point[0]) ** 2, indexing="ij")
    accept = (v + u) < tolerance ** 2
    return bool((torch.from_numpy(mask) & accept).view(-1).any())


def test_pointing_hit_matches_torchray_everywhere():
    rng = np.random.default_rng(0)
    for _ in range(30):
        w, h = rng.integers(20, 90, size=2)
        x0, y0 = rng.integers(0, w - 5), rng.integers(0, h - 5)
        boxes = [Box(x0, y0, x0 + rng.integers(1, 30), y0 + rng.integers(1, 30), "a")]
        mask = object_mask(boxes, (int(w), int(h)), "a")
        for _ in range(20):
            p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            assert pointing_hit(mask, p) == torchray_hit(mask, p)


def test_tolerance_is_strict_and_peak_is_first_maximum():
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:20, 10:20] = True  # pixels 10..19
    assert not pointing_hit(mask, (34, 15))  # exactly 15 px from the last pixel (19): a miss
    assert pointing_hit(mask, (33, 15)) and not torchray_hit(mask, (34, 15))
    assert pointing_hit(mask, (29, 29)) == torchray_hit(mask, (29, 29)) is True  # 10² + 10²
    cam = np.zeros((4, 5))
    cam[1, 3] = cam[2, 1] = 1
    assert peak(cam) == (3, 1)


def test_energy_skip_and_difficult():
    boxes = [Box(0, 0, 10, 10, "cat"), Box(50, 50, 60, 60, "dog", difficult=True)]
    cam = np.zeros((100, 100), dtype=np.float32)
    cam[:10, :10] = 1
    cam[90:, 90:] = 1
    assert energy(cam, object_mask(boxes, (100, 100), "cat")) == pytest.approx(0.5)
    assert all_difficult(boxes, "dog") and not all_difficult(boxes, "cat")
    assert ebp_difficult(boxes, "cat", (100, 100))  # 1 % of the image, another class present
    assert not ebp_difficult(boxes[:1], "cat", (100, 100))  # alone in the image
    assert not ebp_difficult([Box(0, 0, 60, 60, "cat"), boxes[1]], "cat", (100, 100))


def test_torchray_flag_file(tmp_path):
    (tmp_path / "flags.txt").write_text("000001\t" + "\t".join("1" if i == 7 else "0"
                                                                for i in range(20)) + "\n")
    flags = load_difficult_flags(tmp_path / "flags.txt")
    assert flags[("000001", "cat")] and not flags[("000001", "dog")]
