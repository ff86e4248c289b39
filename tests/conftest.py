import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WSOL_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} is absent (tests on ../shared/data skip without it)")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long accuracy runs (run from benchmarks, not CI)")
    config.addinivalue_line("markers", "accuracy: compares metrics with a stored baseline")


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A random-weight EfficientNet-Lite0 CAM (3 classes, 64x64 input) exported with metadata."""
    import torch

    from wsol_edge.export.onnx_export import export_onnx
    from wsol_edge.export_metadata import FORMAT
    from wsol_edge.models import build_model

    torch.manual_seed(0)
    m = build_model("efficientnet_lite0", 3, pretrained=False).eval()
    meta = {"wsol_edge_format": FORMAT, "class_names": ["a", "b", "c"], "mean": [0.5] * 3, "std": [0.5] * 3,
            "input_size": 64, "method": "cam", "backbone": "efficientnet_lite0", "protocol": "wsoleval",
            "cam_threshold": 0.3, "source_checkpoint_sha256": "0" * 64, "precision": "fp32"}
    return export_onnx(m, tmp_path_factory.mktemp("tiny") / "m.onnx", meta, input_size=64)
