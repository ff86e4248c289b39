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
