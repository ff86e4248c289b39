"""What a user gets from ``pip install .`` or a wheel (how a Jetson image gets the runtime), not the
editable checkout the other tests and CI import: every package, the sample photos and the CUDA sources,
and a runtime that runs from the installed files alone."""
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("setup.py", "README.md", "wsol_edge", "export", "kernels")


def build_wheel(tmp_path: Path) -> Path:
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    # built from a copy: an in-tree build would leave build/ and egg-info in the checkout under test
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    return next((tmp_path / "dist").glob("wsol_edge-*.whl"))


def checkout_files() -> set[str]:
    """Where each installable file of the checkout lands in site-packages."""
    files = {f"wsol_edge/{p.relative_to(REPO / 'wsol_edge').as_posix()}" for p in (REPO / "wsol_edge").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".jpg", ".csv", ".md")}
    files |= {f"wsol_edge/export/{p.name}" for p in (REPO / "export").glob("*.py")}
    files |= {f"wsol_edge/kernels/{p.name}" for p in (REPO / "kernels").iterdir() if p.suffix in (".py", ".cu", ".cuh")}
    return files


def test_the_wheel_installs_every_package_and_runs_a_model_from_the_installed_files(tmp_path, tiny_onnx):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "wsol_edge/runtime/pipeline.py" in checkout_files()  # the walk sees the packages a list once missed
    missing = sorted(checkout_files() - names)
    assert not missing, f"not in the wheel: {missing}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("wsol-train", "wsol-evaluate", "wsol-export", "wsol-run"):
        assert f"{script} =" in scripts

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import wsol_edge; print(wsol_edge.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site)  # the installed copy, not the checkout
    photos = site / "wsol_edge" / "samples" / "images"
    out = tmp_path / "results.jsonl"
    run = subprocess.run([sys.executable, "-m", "wsol_edge.run", "--engine", str(tiny_onnx), "--source", str(photos),
                          "--jsonl", str(out), "--no-progress"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(list(photos.glob("*.jpg"))) > 0
    assert all(Path(r["source"]).parent == photos and len(r["box"]) == 4 for r in lines)
