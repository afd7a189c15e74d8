"""Code shape: ruff clean, and the library never imports the app."""

from __future__ import annotations

import ast
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
