"""Call a running xai app (a local URL or a Hugging Face Space id) with ``gradio_client``.

    python app.py &                                   # serve locally on port 7860
    python examples/client.py examples/cat.png        # -> overlays in ./xai-client-out
    python examples/client.py photo.jpg --app owner/space --model resnet50 --top-k 2

Saves every overlay of the gallery (named by its caption), the labelled gallery, the ZIP (every
map as a greyscale PNG and as float32 .npy, the explained image, the manifest), the raw maps
(``raw/*.npy``: each map at image size and at its layer's feature-map size) and manifest.json
to ``--out``, and prints the top-5 predictions and the resolved layers. A wrong ``--app`` or
an error in the app is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

DEFAULT_APP = "http://127.0.0.1:7860"


def _slug(text: str) -> str:
    text = text.replace("++", "-pp").replace("+", "-plus")
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "panel"


def main(argv: list[str] | None = None) -> int:
    """Explain one image through the app's ``/explain`` endpoint and save the results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("image", type=Path, help="image file to explain")
    p.add_argument("--app", default=DEFAULT_APP,
                   help=f"app URL or Space id (default {DEFAULT_APP})")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--mode", choices=("stages", "convs"), default="stages")
    p.add_argument("--methods", nargs="+", default=["gradcam", "gradcam++", "eigencam", "xgradcam"])
    p.add_argument("--target", default="top-1", help="top-1, a class index or a label")
    p.add_argument("--top-k", type=int, default=1, help="explain the k most probable classes")
    p.add_argument("--guided", action="store_true", help="add Guided Grad-CAM")
    p.add_argument("--fit", choices=("crop", "full"), default="crop")
    p.add_argument("--opacity", type=float, default=0.5, help="overlay opacity, 0 to 1")
    p.add_argument("--colormap", default="jet", help="jet, turbo, viridis, inferno, magma, gray")
    p.add_argument("--layer", default="", help="a module name or conv:N as an extra row")
    p.add_argument("--out", type=Path, default=Path("xai-client-out"), help="output folder")
    p.add_argument("--token", default=None, help="Hugging Face token for a private Space")
    args = p.parse_args(argv)

    if not args.image.is_file():
        print(f"error: no such image: {args.image}", file=sys.stderr)
        return 2
    try:
        answer = _call(args)
    except Exception as exc:  # a wrong --app, no network, or the app's own message
        print(f"error: {_one_line(exc, args.app)}", file=sys.stderr)
        return 2
    _save(args, *answer)
    return 0


def _one_line(exc: Exception, app: str) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc).__name__ == "AppError":
        return f"the app refused the request: {text[:300]}"
    return f"cannot use the app at {app!r} ({type(exc).__name__}: {text[:200]})"


def _call(args: argparse.Namespace) -> tuple:
    import logging

    from gradio_client import Client, handle_file

    logging.getLogger("httpx").setLevel(logging.WARNING)
    client = Client(args.app, token=args.token, verbose=False)
    print("models offered:", ", ".join(client.predict(api_name="/models")))
    gallery, top5, table, manifest, *_ = client.predict(
        image=handle_file(str(args.image)), model=args.model, mode=args.mode,
        methods=args.methods, target=args.target, top_k=args.top_k, guided=args.guided,
        fit=args.fit, opacity=args.opacity, colormap=args.colormap,
        layer_row="extra" if args.layer else "none", layer=args.layer, api_name="/explain")
    # the sheet, the ZIP and the raw maps are written after the answer: /files waits for them
    sheet, archive, raw = client.predict(manifest, api_name="/files")
    return gallery, top5, table, manifest, sheet, archive, raw


def _save(args: argparse.Namespace, gallery, top5, table, manifest, sheet, archive,
          raw) -> None:

    args.out.mkdir(parents=True, exist_ok=True)
    for i, item in enumerate(gallery, 1):
        suffix = Path(item["image"]).suffix or ".jpg"
        name = f"{i:02d}_{_slug(item['caption'] or 'panel')}{suffix}"
        shutil.copyfile(item["image"], args.out / name)
    shutil.copyfile(sheet, args.out / Path(sheet).name)
    shutil.copyfile(archive, args.out / Path(archive).name)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with zipfile.ZipFile(archive) as zf:  # float32 maps (numpy.load): image and feature-map size
        names = [n for n in zf.namelist() if n.startswith("raw/") and n.endswith(".npy")]
        zf.extractall(args.out, members=names)

    print(f"top-5 predictions of {args.model} for {args.image}:")
    for c in top5["confidences"]:
        print(f"  {c['confidence']:7.2%}  {c['label']}")
    print("layers:")
    for row in table["data"]:
        print("  " + " · ".join(str(v) for v in row[:5]))
    print(f"{len(gallery)} overlays, {len(names)} raw maps (raw/*.npy), the labelled gallery "
          f"and the ZIP saved to {args.out}/")


if __name__ == "__main__":
    sys.exit(main())
