"""Build the Hugging Face Space bundle from this repository, validate it, and upload it.

    python space/deploy.py OWNER/SPACE --dry-run          # assemble + validate, no network
    python space/deploy.py OWNER/SPACE                    # create the Space if missing, upload
    python space/deploy.py OWNER/SPACE --hardware t4-small --cpu-torch ...

The bundle holds exactly: README.md (the Space card, ``space/README.md``), app.py, xai_app/,
xai/ (Python files only), examples/ (images and client.py) and requirements.txt. The upload
replaces everything else in the Space (``.gitattributes`` is kept by the Hub).
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("xai", "xai_app")
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_BUNDLE_BYTES = 30 * 2**20
MAX_PRELOAD = 10  # the Hub's limit on preload_from_hub entries
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
REQUIRED_KEYS = ("title", "sdk", "sdk_version", "app_file", "python_version", "license",
                 "short_description", "models", "preload_from_hub")
BUNDLED = "efficientnet_lite0"  # weights ship in a pip package, not on the Hub


def bundle_files(root: Path = ROOT) -> dict[str, Path]:
    """{path in the Space: source file} for every file the Space needs."""
    files = {"README.md": root / "space" / "README.md", "app.py": root / "app.py",
             "requirements.txt": root / "requirements.txt"}
    for package in PACKAGES:
        for src in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in src.parts:
                files[src.relative_to(root).as_posix()] = src
    for src in sorted((root / "examples").iterdir()):
        if src.is_file() and (src.suffix.lower() in EXAMPLE_SUFFIXES or src.name == "client.py"):
            files[f"examples/{src.name}"] = src
    return files


def assemble(out: Path, repo_id: str = "OWNER/SPACE", cpu_torch: bool = False,
             root: Path = ROOT) -> Path:
    """Copy the bundle into ``out`` (emptied first); the card's OWNER/SPACE becomes ``repo_id``."""
    if out.exists():
        shutil.rmtree(out)
    for rel, src in bundle_files(root).items():
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    card = out / "README.md"
    card.write_text(card.read_text(encoding="utf-8").replace("OWNER/SPACE", repo_id),
                    encoding="utf-8")
    if cpu_torch:
        req = out / "requirements.txt"
        req.write_text(f"{CPU_INDEX}\n{req.read_text(encoding='utf-8')}", encoding="utf-8")
    return out


def front_matter(card: Path) -> dict:
    """The YAML front matter of a Space card."""
    from huggingface_hub import SpaceCard

    data = SpaceCard.load(card).data.to_dict()
    if not data:
        raise ValueError(f"{card}: no YAML front matter")
    return data


def pins(requirements: Path) -> dict[str, str]:
    """{normalised distribution name: pinned version} from ``name==version`` lines."""
    out = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line)
        if match:
            out[_norm(match.group(1))] = match.group(2)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def hub_ids(models: list[str]) -> dict[str, str]:
    """{model name: timm's hf_hub_id} for every offered model whose weights are on the Hub."""
    import timm

    out = {}
    for name in models:
        if name == BUNDLED:
            continue
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None or not getattr(cfg, "hf_hub_id", None):
            raise ValueError(f"timm has no Hub weights for {name!r}")
        out[name] = cfg.hf_hub_id
    return out


def offered_models(service: Path) -> list[str]:
    """``OFFERED_MODELS`` of the app, read from its source (no import)."""
    for node in ast.parse(service.read_text(encoding="utf-8")).body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "OFFERED_MODELS" and node.value:
            return list(ast.literal_eval(node.value))
    raise ValueError(f"no OFFERED_MODELS in {service}")


@dataclass
class Report:
    """What validation found: errors fail the bundle, warnings are printed."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def _imports(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(module-level, deferred) top-level import names; imports under try are optional."""
    top, deferred = set(), set()

    def visit(node: ast.AST, depth: int, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if isinstance(child, ast.ImportFrom) and (child.level or not child.module):
                    continue
                names = [a.name for a in child.names] if isinstance(child, ast.Import) \
                    else [child.module]
                if not guarded:
                    (top if depth == 0 else deferred).update(n.split(".")[0] for n in names)
            deeper = depth + isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            visit(child, deeper, guarded or isinstance(child, ast.Try))

    visit(tree, 0, False)
    return top, deferred


def validate(bundle: Path) -> Report:
    """Check the card's front matter against the app and requirements, and the bundle's files."""
    rep = Report()
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    rep.files, rep.size = files, sum((bundle / f).stat().st_size for f in files)
    for need in ("README.md", "app.py", "requirements.txt", "xai/__init__.py",
                 "xai_app/__init__.py", "xai_app/service.py", "xai_app/ui.py"):
        if need not in files:
            rep.errors.append(f"missing {need}")
    if not any(f.startswith("examples/") and f.endswith(EXAMPLE_SUFFIXES) for f in files):
        rep.errors.append("no example images under examples/")
    allowed = re.compile(r"^(README\.md|app\.py|requirements\.txt|(xai|xai_app)/.+\.py|"
                         r"examples/[^/]+\.(png|jpe?g|webp)|examples/client\.py)$")
    rep.errors += [f"unexpected file {f}" for f in files if not allowed.match(f)]
    if rep.size > MAX_BUNDLE_BYTES:
        rep.errors.append(f"bundle is {rep.size / 2**20:.1f} MiB (limit "
                          f"{MAX_BUNDLE_BYTES / 2**20:.0f} MiB)")
    if rep.errors:
        return rep

    try:
        meta = front_matter(bundle / "README.md")
    except Exception as exc:  # a YAML or card error is one finding
        rep.errors.append(f"README.md front matter: {exc}")
        return rep
    rep.errors += [f"front matter lacks {k}" for k in REQUIRED_KEYS if k not in meta]
    pinned = pins(bundle / "requirements.txt")
    if meta.get("sdk") != "gradio":
        rep.errors.append(f"sdk must be gradio, not {meta.get('sdk')!r}")
    if str(meta.get("sdk_version")) != pinned.get("gradio"):
        rep.errors.append(f"sdk_version {meta.get('sdk_version')} differs from the tested pin "
                          f"gradio=={pinned.get('gradio')} in requirements.txt")
    if meta.get("app_file") not in files:
        rep.errors.append(f"app_file {meta.get('app_file')!r} is not in the bundle")
    if not isinstance(meta.get("python_version"), str) or not re.fullmatch(
            r"3\.\d+(\.\d+)?", meta.get("python_version", "")):
        rep.errors.append("python_version must be a quoted string such as \"3.11\"")
    if len(str(meta.get("short_description", ""))) > 60:
        rep.errors.append("short_description is over 60 characters")
    try:
        expected = set(hub_ids(offered_models(bundle / "xai_app" / "service.py")).values())
    except Exception as exc:
        rep.errors.append(f"cannot read the offered models: {exc}")
        expected = set()
    models = set(meta.get("models") or [])
    preload = meta.get("preload_from_hub") or []
    if models != expected:
        rep.errors.append(f"models {sorted(models)} differ from the offered timm models "
                          f"{sorted(expected)}")
    preload_repos = {str(p).split()[0] for p in preload}
    if preload_repos != expected:
        rep.errors.append(f"preload_from_hub {sorted(preload_repos)} differs from "
                          f"{sorted(expected)}")
    if len(preload) > MAX_PRELOAD:
        rep.errors.append(f"{len(preload)} preload_from_hub entries (the Hub allows "
                          f"{MAX_PRELOAD})")

    local = {f.split("/")[0].removesuffix(".py") for f in files if f.endswith(".py")}
    dists = importlib.metadata.packages_distributions()
    for f in (f for f in files if f.endswith(".py")):
        try:
            tree = ast.parse((bundle / f).read_text(encoding="utf-8"), f)
            compile(tree, f, "exec")
            top, deferred = _imports(tree)
        except (SyntaxError, ValueError) as exc:
            rep.errors.append(f"{f}: {exc}")
            continue
        for name, strict in [(n, True) for n in top] + [(n, False) for n in deferred - top]:
            if name in sys.stdlib_module_names or name in local or name == "__future__":
                continue
            owners = {_norm(d) for d in dists.get(name, [name])}
            if not owners & set(pinned) and f != "examples/client.py":
                message = f"{f} imports {name}, which requirements.txt does not pin"
                (rep.errors if strict else rep.warnings).append(message)
    return rep


def upload(bundle: Path, repo_id: str, token: str | None, private: bool,
           hardware: str | None, examples: str | None = None) -> str:
    """Create the Space if missing and make its files exactly the bundle's; optionally request
    ``hardware`` and set the XAI_CACHE_EXAMPLES variable to ``examples``."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True,
                          private=private)
    api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(bundle),
                      delete_patterns="*", commit_message="Deploy the xai CAM gallery app")
    if examples:
        api.add_space_variable(repo_id, "XAI_CACHE_EXAMPLES", examples)
    if hardware:
        api.request_space_hardware(repo_id, hardware)
    return str(url)


def main(argv: list[str] | None = None) -> int:
    """Assemble, validate and (unless --dry-run) upload; exit status 1 if invalid."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repo_id", nargs="?", default="OWNER/SPACE",
                   help="the Space, as owner/name (default: a placeholder for --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="assemble and validate locally; no network")
    p.add_argument("--out", type=Path, default=None,
                   help="bundle folder (default: a temporary folder)")
    p.add_argument("--cpu-torch", action="store_true",
                   help="install torch from PyTorch's CPU wheel index (CPU basic hardware)")
    p.add_argument("--hardware", default=None,
                   help="request this hardware after upload, e.g. cpu-basic, t4-small, zero-a10g")
    p.add_argument("--examples", choices=("eager", "lazy", "off"), default=None,
                   help="example caching (Space variable XAI_CACHE_EXAMPLES); default: eager, "
                        "lazy on ZeroGPU where a GPU is only attached per call")
    p.add_argument("--private", action="store_true", help="create the Space as private")
    p.add_argument("--token", default=None, help="Hugging Face token (default: the login's)")
    args = p.parse_args(argv)
    valid_id = re.fullmatch(r"[\w.\-]+/[\w.\-]+", args.repo_id) is not None
    if not args.dry_run and (not valid_id or args.repo_id == "OWNER/SPACE"):
        p.error("give the Space as owner/name (or use --dry-run)")

    out = args.out or Path(tempfile.mkdtemp(prefix="xai-space-")) / "bundle"
    bundle = assemble(out, args.repo_id, args.cpu_torch)
    rep = validate(bundle)
    for w in rep.warnings:
        print(f"warning: {w}")
    for e in rep.errors:
        print(f"error: {e}", file=sys.stderr)
    print(f"bundle: {bundle} ({len(rep.files)} files, {rep.size / 2**20:.1f} MiB)")
    if not rep.ok:
        return 1
    if args.dry_run:
        for f in rep.files:
            print(f"  {f}")
        print("dry run: valid; nothing uploaded")
        return 0
    examples = args.examples or ("lazy" if (args.hardware or "").startswith("zero") else "eager")
    url = upload(bundle, args.repo_id, args.token, args.private, args.hardware, examples)
    print(f"uploaded to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
