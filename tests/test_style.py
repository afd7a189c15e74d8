"""Code shape: ruff clean, and the library never imports the app."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -r requirements-dev.txt")
    res = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_library_never_imports_the_app():
    for path in (ROOT / "xai").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("gradio", "app", "xai_app")), (path, name)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install -r requirements-dev.txt && python -m pytest"
    assert command in readme and command in ci
    assert "pip install -r requirements.txt && python app.py" in readme
    assert sys.version_info >= (3, 10)


OUTSIDE = ["bench", "xai_app", "scripts", "tests", "examples", "space"]


def _xai_bindings(tree: ast.AST) -> set[str]:
    """Local names bound to the xai package or one of its modules."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "xai" or a.name.startswith("xai."):
                    bound.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "xai" or node.module.startswith("xai.")):
            bound.update(a.asname or a.name for a in node.names)
    return bound


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_nothing_outside_the_library_uses_a_private_xai_name():
    files = [ROOT / "app.py"] + [p for d in OUTSIDE for p in (ROOT / d).rglob("*.py")]
    found = []
    for path in files:
        tree = ast.parse(path.read_text())
        bound = _xai_bindings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module == "xai" or node.module.startswith("xai.")):
                found += [(path.name, node.module, a.name) for a in node.names if _private(a.name)]
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in bound:
                    found.append((path.name, root.id, node.attr))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "setattr" and len(node.args) >= 2
                  and isinstance(node.args[0], ast.Name) and node.args[0].id in bound
                  and isinstance(node.args[1], ast.Constant)
                  and _private(str(node.args[1].value))):
                found.append((path.name, node.args[0].id, node.args[1].value))
    assert not found, found


def test_library_functions_and_the_engine_stay_small():
    long = []
    for path in (ROOT / "xai").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > 50:
                    long.append((path.name, node.name, node.end_lineno - node.lineno + 1))
    assert not long, long
    assert len((ROOT / "xai" / "engine.py").read_text().splitlines()) < 250


def test_the_wheel_carries_the_app_and_its_requirements(tmp_path):
    """``pip install .[app]`` gives an app that starts: xai_app is packaged, and the app extra
    names every third-party package the app imports."""
    import zipfile

    src = tmp_path / "src"  # a copy: setuptools writes build/ beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("xai", "xai_app"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = next(zf.read(n).decode() for n in names if n.endswith("METADATA"))
        entry = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for module in ("xai/engine.py", "xai/cams/gradcam.py", "xai_app/ui.py",
                   "xai_app/service.py", "xai_app/__main__.py"):
        assert module in names, module
    extra = {re.match(r"[A-Za-z0-9_.-]+", line.split(":", 1)[1].strip()).group(0).lower()
             for line in meta.splitlines()
             if line.startswith("Requires-Dist:") and "extra == \"app\"" in line}
    imported = set()
    for path in (ROOT / "xai_app").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"xai", "xai_app", "__future__"}
    known = {"gradio": "gradio", "gradio_client": "gradio-client", "httpx": "httpx",
             "anyio": "anyio", "safehttpx": "safehttpx", "PIL": None, "numpy": None,
             "torch": None, "sklearn": "scikit-learn", "matplotlib": None, "fastapi": "gradio",
             "starlette": "gradio", "uvicorn": "gradio", "huggingface_hub": None, "timm": None,
             "spaces": None}  # spaces: imported only on a Hugging Face GPU Space
    for module in third_party:
        assert module in known, f"the app imports {module}: add it to the [app] extra"
        assert known[module] is None or known[module] in extra, (module, extra)
    assert "xai-app = xai_app.__main__:main" in entry
