"""Accuracy regression against stored baselines (``pytest -m accuracy``; minutes, needs ../shared/data).

Each test recomputes a committed result with today's code and fails beyond a stated tolerance.
"""
import json
from pathlib import Path

import pytest

from conftest import shared_dataset

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
pytestmark = pytest.mark.accuracy


def stored(name: str) -> dict:
    path = RESULTS / name
    if not path.is_file():
        pytest.skip(f"no stored baseline {path.name}")
    return json.loads(path.read_text())


def test_imagenet_cam_baseline_matches_reference(tmp_path):
    """The untrained ImageNet EfficientNet-Lite0 CAM on cub50 test: the protocol page's reference
    is 96.0 / 54.8 / 9.0 (MaxBoxAcc at IoU 30/50/70); tolerance 0.05 points (rounding)."""
    from wsol_edge import evaluate

    root = shared_dataset("cub50")
    out = tmp_path / "r.json"
    assert evaluate.main(["--imagenet-baseline", "--dataset", "cub", "--data-root", str(root), "--split", "test",
                          "--no-progress", "--output", str(out)]) == 0
    got = json.loads(out.read_text())["metrics"]["max_box_acc"]
    for k, ref in {"30": 96.0, "50": 54.8, "70": 9.0}.items():
        assert abs(got[k] - ref) <= 0.05, (k, got[k], ref)
    base = stored("cub50_imagenet_cam_lite0.json")["metrics"]["max_box_acc"]
    assert got == base


def test_trained_cam_onnxruntime_matches_stored_regression():
    """ORT FP32 of the trained cub50 model vs the stored regression table: GT-known Loc within 0.1."""
    data = stored("cub50_cam_lite0_precisions.json")
    ckpt = REPO / "runs" / "cub50_cam_lite0" / "checkpoint.pt"
    if not ckpt.is_file():
        pytest.skip("trained checkpoint runs/cub50_cam_lite0/checkpoint.pt is absent (train it with the config)")
    from wsol_edge.backends import load_backend
    from wsol_edge.data import read_cub
    from wsol_edge.evaluation import evaluate_backend

    onnx = REPO / "runs" / "cub50_export" / "model.fp32.onnx"
    if not onnx.is_file():
        pytest.skip("exported model runs/cub50_export/model.fp32.onnx is absent (run the regression command)")
    metrics, _ = evaluate_backend(load_backend(onnx), read_cub(shared_dataset("cub50"), "test"))
    ref = next(r for r in data["records"] if r["backend"] == "onnxruntime" and r["precision"] == "fp32")
    assert abs(metrics["gt_known_loc"] - ref["metrics"]["gt_known_loc"]) <= 0.1
    assert abs(metrics["top1_cls"] - ref["metrics"]["top1_cls"]) <= 0.1
