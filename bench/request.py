"""What the user waits for: the request, not the engine.

    python -m bench.request [--models efficientnet_lite0 resnet152] [--repeats 7]
    python -m bench.request --quick          # EfficientNet-Lite0, 640x480, 3 repeats, 10 requests

(e) the ``/explain`` and ``/predict`` round trips through ``gradio_client`` against the real
app served in another process (``bench.serve``), and (f) click to gallery visible in headless
Chromium (``bench.browser``), for a 640x480 and a 4000x3000 JPEG of the cat example, beside the
engine's own time (``xai.explain`` in this process); (g) the served app's memory and disk over
``--memory`` /explain requests with their background files (``bench.app_memory``, its own
server under a ``--disk-budget``). Medians after one warm-up call. Writes
``bench/results/request.json`` and ``request.md``; ``python -m bench.run`` runs it too.
"""

from __future__ import annotations

import argparse
import json
import os
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


def start_app(port: int, threads: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``bench.serve`` on ``port`` (its environment plus ``env``), once it is ready."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.serve", "--port", str(port),
                             "--threads", str(threads)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
    deadline = time.time() + 300
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("READY"):
            return proc
        if time.time() > deadline:
            break
    proc.kill()
    raise RuntimeError("the app did not start")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.request", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="default efficientnet_lite0 resnet152 (--quick: efficientnet_lite0)")
    p.add_argument("--sizes", nargs="+", choices=[f"{w}x{h}" for w, h in SIZES], default=None,
                   help="default both (--quick: 640x480)")
    p.add_argument("--repeats", type=int, default=None, help="default 7 (--quick: 3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-browser", action="store_true", help="skip (f)")
    p.add_argument("--memory-only", action="store_true", help="skip (e) and (f)")
    p.add_argument("--memory", type=int, default=None, metavar="N",
                   help="(g): N /explain requests after a warm-up (default 100, --quick: 10; "
                        "0 skips it)")
    p.add_argument("--disk-budget", default="64MB", help="XAI_DISK_BUDGET of (g)'s server")
    p.add_argument("--quick", action="store_true", help="smoke run (see the defaults)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    args.models = args.models or (["efficientnet_lite0"] if args.quick
                                  else ["efficientnet_lite0", "resnet152"])
    args.sizes = args.sizes or (["640x480"] if args.quick else [f"{w}x{h}" for w, h in SIZES])
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.memory = (10 if args.quick else 100) if args.memory is None else args.memory
    return args


def measure(args: argparse.Namespace) -> dict:
    """(e), (f) and (g) as ``args`` say: {"rows": [...], "memory": {...}, "load_average"}."""
    import torch

    from bench.measure import load_average

    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="xai-bench-req-"))
    images = {k: v for k, v in make_images(folder).items() if k in args.sizes}
    out: dict = {"load_average": {"start": load_average()}, "rows": []}
    if args.models and images and not args.memory_only:
        out["rows"] = request_rows(args, images)
    if args.memory:
        out["memory"] = memory_check(args, images.get("640x480") or make_images(folder)[
            "640x480"], folder)
    out["load_average"]["end"] = load_average()
    return out


def request_rows(args: argparse.Namespace, images: dict[str, Path]) -> list[dict]:
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
        stop_app(proc)
    return rows


def memory_check(args: argparse.Namespace, image: Path, folder: Path) -> dict:
    """(g) on its own server, whose run folders and Gradio cache are known and budgeted."""
    from bench.app_memory import app_memory
    from xai_app.budget import parse_bytes

    runs, cache = folder / "runs", folder / "gradio"
    port = free_port()
    proc = start_app(port, args.threads, {"XAI_APP_OUTPUT": str(runs),
                                          "GRADIO_TEMP_DIR": str(cache),
                                          "XAI_DISK_BUDGET": args.disk_budget})
    try:
        result = app_memory(f"http://127.0.0.1:{port}/", proc.pid, image, args.memory,
                            max(3, args.memory // 10), [runs, cache],
                            parse_bytes(args.disk_budget) / 2**20)
    finally:
        stop_app(proc)
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mib"}), flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from bench.measure import machine

    out = {"command": "python -m bench.request " + " ".join(
               sys.argv[1:] if argv is None else argv),
           "machine": machine(torch.device("cpu")) | {"threads": args.threads}}
    out |= measure(args)
    write(out, Path(args.out))
    return out


def write(out: dict, folder: Path) -> None:
    """``request.json`` and ``request.md`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "request.json").write_text(json.dumps(out, indent=2))
    (folder / "request.md").write_text(markdown(out))
    print(markdown(out))


def markdown(out: dict) -> str:
    """The request table, the memory sentence, the load and the command."""
    from bench.app_memory import markdown as memory_markdown

    text = table(out["rows"]) if out.get("rows") else ""
    if out.get("memory"):
        text += "\n" + memory_markdown(out["memory"])
    load = out.get("load_average", {})
    text += f"\nLoad average {load.get('start')} at start, {load.get('end')} at end."
    return text + (f" Command: `{out['command']}`\n" if "command" in out else "\n")


def table(rows: list[dict]) -> str:
    """The README's request table (milliseconds)."""
    lines = ["| model | image | engine | (e) /predict | (e) /explain + 12 panels | explain ÷ "
             "(predict + engine) | (e) /explain, gradio_client downloading | (f) click → "
             "answer | (f) click → gallery |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        click = answer = "—"
        if "click_to_gallery_s" in r:
            click = f"{1e3 * r['click_to_gallery_s']:.0f} ms"
            answer = f"{1e3 * r['click_to_answer_s']:.0f} ms"
        lines.append(f"| {r['model']} | {r['image']} | {1e3 * r['engine_s']:.0f} ms | "
                     f"{1e3 * r['predict_s']:.0f} ms | {1e3 * r['explain_s']:.0f} ms | "
                     f"{r['ratio']:.2f} | {1e3 * r['explain_client_downloads_s']:.0f} ms | "
                     f"{answer} | {click} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
