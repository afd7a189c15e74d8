"""What the user waits for: the request, not the engine.

    python -m bench.request [--models efficientnet_lite0 resnet152] [--repeats 7]

(e) the ``/explain`` and ``/predict`` round trips through ``gradio_client`` against the real
app served in another process (``bench.serve``), and (f) click to gallery visible in headless
Chromium (``bench.browser``), for a 640x480 and a 4000x3000 JPEG of the cat example, beside the
engine's own time (``xai.explain`` in this process). Medians after one warm-up call. Writes
``bench/results/request.json`` and ``request.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = ((640, 480), (4000, 3000))
TARGET_RATIO = 1.5  # /explain <= 1.5 x (/predict + engine)


def make_images(folder: Path) -> dict[str, Path]:
    from PIL import Image

    src = Image.open(ROOT / "examples" / "cat.png").convert("RGB")
    out = {}
    for w, h in SIZES:
        path = folder / f"cat_{w}x{h}.jpg"
        src.resize((w, h), Image.BICUBIC).save(path, quality=92)
        out[f"{w}x{h}"] = path
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, threads: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "bench.serve", "--port", str(port),
                             "--threads", str(threads)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.time() + 300
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("READY"):
            return proc
        if time.time() > deadline:
            break
    proc.kill()
    raise RuntimeError("the app did not start")


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: model load, first-call allocations
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def engine_s(name: str, image: Path, repeats: int) -> float:
    import xai

    model = xai.load_model(name, pretrained=name == xai.DEFAULT_MODEL, device="cpu")
    return timed(lambda: xai.explain(model, image), repeats)


def round_trips(url: str, name: str, image: Path, repeats: int) -> dict[str, float]:
    """/predict and /explain through gradio_client: as it comes (it downloads every output
    file, each on a new connection: ~23 ms a file here), and as a browser gets it (the answer,
    then the panels over one kept-alive connection)."""
    import httpx
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    bare = Client(url, verbose=False, download_files=False)
    pred = timed(lambda: bare.predict(image=handle_file(str(image)), model=name,
                                      api_name="/predict"), repeats)
    expl = timed(lambda: client.predict(image=handle_file(str(image)), model=name,
                                        api_name="/explain"), repeats)
    with httpx.Client() as http:
        def answer_and_panels() -> None:
            out = bare.predict(image=handle_file(str(image)), model=name, api_name="/explain")
            for item in out[0]:
                http.get(item["image"]["url"]).raise_for_status()

        panels = timed(answer_and_panels, repeats)
    return {"predict_s": pred, "explain_s": panels, "explain_client_downloads_s": expl}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.request", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet152"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-browser", action="store_true", help="skip (f)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    images = make_images(Path(tempfile.mkdtemp(prefix="xai-bench-req-")))
    port = free_port()
    proc = start_app(port, args.threads)
    url = f"http://127.0.0.1:{port}/"
    rows = []
    try:
        for name in args.models:
            for size, image in images.items():
                row = {"model": name, "image": size, "engine_s": engine_s(name, image,
                                                                          args.repeats)}
                row.update(round_trips(url, name, image, args.repeats))
                if not args.no_browser:
                    from bench.browser import click_to_gallery

                    row.update(click_to_gallery(url, name, image, args.repeats))
                row["ratio"] = row["explain_s"] / (row["predict_s"] + row["engine_s"])
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    out = {"command": "python -m bench.request " + " ".join(argv or sys.argv[1:]),
           "machine": {"cpu": platform.processor() or platform.machine(),
                       "cores": os.cpu_count(), "threads": args.threads,
                       "python": platform.python_version(), "torch": torch.__version__},
           "rows": rows}
    folder = ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "request.json").write_text(json.dumps(out, indent=2))
    (folder / "request.md").write_text(table(rows))
    print(table(rows))
    return out


def table(rows: list[dict]) -> str:
    """The README's request table (milliseconds)."""
    lines = ["| model | image | engine | (e) /predict | (e) /explain + 12 panels | explain ÷ "
             "(predict + engine) | (e) /explain, gradio_client downloading | (f) click → "
             "gallery |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        click = f"{1e3 * r['click_to_gallery_s']:.0f} ms" if "click_to_gallery_s" in r else "—"
        lines.append(f"| {r['model']} | {r['image']} | {1e3 * r['engine_s']:.0f} ms | "
                     f"{1e3 * r['predict_s']:.0f} ms | {1e3 * r['explain_s']:.0f} ms | "
                     f"{r['ratio']:.2f} | {1e3 * r['explain_client_downloads_s']:.0f} ms | "
                     f"{click} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
