"""Kill a dataset run half-way and resume it: no image is done twice.

Makes N composite images (the examples pasted on grey canvases, with their boxes in
``list.jsonl``), starts ``python -m xai explain FOLDER``, kills it (SIGKILL) once half the
images are in the manifest, runs the same command again and checks the manifest: every image
exactly once, and the second run explained only what the first had not committed.

    python scripts/resume_demo.py --n 500 --work /tmp/resume_demo
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from annotated import make_set  # noqa: E402

from xai.manifest import MANIFEST_DIR, done_ids, read_manifest  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--work", type=Path, default=Path("/tmp/resume_demo"))
    ap.add_argument("--extra", nargs="*", default=["--no-overlays", "--batch-size", "8",
                                                   "--chunk", "16"])
    args = ap.parse_args()
    images, out = args.work / "images", args.work / "out"
    if not images.is_dir():
        make_set(images, args.n)
    cmd = [sys.executable, "-m", "xai", "explain", str(images), "--out", str(out), *args.extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    done: set[str] = set()
    while proc.poll() is None and len(done) < args.n // 2:
        time.sleep(2)
        if (out / MANIFEST_DIR).is_dir():
            done = done_ids(out / MANIFEST_DIR)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.perf_counter() - t0
    before = done_ids(out / MANIFEST_DIR)
    t1 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    resumed = time.perf_counter() - t1
    table = read_manifest(out)
    per_image = Counter(table.column("image_id").to_pylist())
    last = json.loads((out / "last_run.json").read_text())
    result = {"images": args.n, "killed_after_s": round(killed_at, 1),
              "done_when_killed": len(before), "second_run": last,
              "second_run_wall_s": round(resumed, 1), "manifest_rows": table.num_rows,
              "distinct_images": len(per_image), "max_rows_per_image": max(per_image.values()),
              "no_image_twice": last["explained"] == args.n - len(before)
              and max(per_image.values()) == 1 and len(per_image) == args.n}
    print(json.dumps(result, indent=2))
    (args.work / "resume_demo.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
