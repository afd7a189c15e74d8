"""The Hugging Face Space: the card's front matter and the bundle that deploy.py assembles
(dry run, no network), and the upload calls it would make."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_deploy():
    spec = importlib.util.spec_from_file_location("xai_space_deploy", ROOT / "space" / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


deploy = _load_deploy()


@pytest.fixture(scope="module")
def meta() -> dict:
    return deploy.front_matter(ROOT / "space" / "README.md")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "bundle"
    assert deploy.main(["me/xai-demo", "--dry-run", "--out", str(out)]) == 0
    return out


def test_front_matter(meta):
    import gradio

    pinned = deploy.pins(ROOT / "requirements.txt")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert str(meta["sdk_version"]) == pinned["gradio"] == gradio.__version__
    assert meta["python_version"] == "3.11" and meta["license"] == "mit"
    assert 0 < len(meta["short_description"]) <= 60
    assert 6.16 <= float(".".join(str(meta["sdk_version"]).split(".")[:2])) < 7


def test_models_and_preload_are_the_offered_timm_models(meta):
    import timm

    from xai_app.service import OFFERED_MODELS

    hub = {timm.models.get_pretrained_cfg(n).hf_hub_id for n in OFFERED_MODELS
           if n != "efficientnet_lite0"}
    assert len(hub) == 6 and all(h.startswith("timm/") for h in hub)
    assert set(meta["models"]) == hub
    entries = [str(e).split() for e in meta["preload_from_hub"]]
    assert {e[0] for e in entries} == hub and len(entries) <= 10
    assert all("model.safetensors" in e[1].split(",") for e in entries)
    assert deploy.offered_models(ROOT / "xai_app" / "service.py") == list(OFFERED_MODELS)


def test_dry_run_bundle_holds_exactly_the_needed_files(bundle):
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    expected = {"README.md", "app.py", "requirements.txt", "examples/client.py"}
    expected |= {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.png")}
    for package in ("xai", "xai_app"):
        expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")
                     if "__pycache__" not in p.parts}
    assert files == expected
    assert not any(f.startswith(("tests/", "space/", ".")) or "__pycache__" in f for f in files)
    assert (bundle / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    card = (bundle / "README.md").read_text()
    assert 'Client("me/xai-demo")' in card and "OWNER/SPACE" not in card
    report = deploy.validate(bundle)
    assert report.ok, report.errors
    assert report.size < deploy.MAX_BUNDLE_BYTES


def test_validate_catches_a_broken_bundle(bundle, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "notes.txt").write_text("stray")
    assert any("unexpected file notes.txt" in e for e in deploy.validate(broken).errors)
    (broken / "notes.txt").unlink()
    card = broken / "README.md"
    text = card.read_text()
    card.write_text(text.replace("sdk_version: 6.31.0", "sdk_version: 5.0.0")
                    .replace("  - timm/resnet50.a1_in1k\n", ""))
    errors = deploy.validate(broken).errors
    assert any("sdk_version 5.0.0 differs" in e for e in errors)
    assert any(e.startswith("models ") for e in errors)
    card.write_text(text)
    (broken / "xai_app" / "extra.py").write_text("import not_a_dependency\n")
    assert any("imports not_a_dependency" in e for e in deploy.validate(broken).errors)
    (broken / "app.py").unlink()
    assert "missing app.py" in deploy.validate(broken).errors


def test_cpu_torch_bundle_uses_the_cpu_wheel_index(tmp_path):
    out = deploy.assemble(tmp_path / "cpu", "me/xai-demo", cpu_torch=True)
    lines = (out / "requirements.txt").read_text().splitlines()
    assert lines[0] == deploy.CPU_INDEX and "torch==" in "\n".join(lines)


def test_upload_creates_the_space_and_mirrors_the_bundle(bundle, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))
            return f"https://huggingface.co/spaces/{repo_id}"

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))

        def request_space_hardware(self, repo_id, hardware):
            calls.append(("hardware", repo_id, hardware))

        def add_space_variable(self, repo_id, key, value):
            calls.append(("variable", repo_id, key, value))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = deploy.upload(bundle, "me/xai-demo", "tok", private=False, hardware="cpu-basic",
                        examples="eager")
    assert url.endswith("/spaces/me/xai-demo")
    create = next(c for c in calls if c[0] == "create_repo")
    assert create[2]["space_sdk"] == "gradio" and create[2]["exist_ok"] is True
    assert create[2]["repo_type"] == "space"
    upload = next(c for c in calls if c[0] == "upload_folder")[1]
    assert upload["folder_path"] == str(bundle) and upload["delete_patterns"] == "*"
    assert ("hardware", "me/xai-demo", "cpu-basic") in calls
    assert ("variable", "me/xai-demo", "XAI_CACHE_EXAMPLES", "eager") in calls
    with pytest.raises(SystemExit):  # a real deploy needs owner/name
        deploy.main(["--out", str(bundle.parent / "x")])
