"""The CUDA runtime API from cuda-python, imported in one place.

``cuda.bindings.runtime`` is a compiled module without type stubs (and absent from the stubs-only
type-check environment), so the one import carries a
targeted ignore; the TensorRT code that uses it is still type-checked in full.
"""
from __future__ import annotations

from typing import Any


def cudart() -> Any:
    try:
        from cuda.bindings import runtime  # pyright: ignore[reportAttributeAccessIssue, reportMissingImports]
    except ImportError:
        raise ImportError("cuda-python is not installed: pip install 'wsol_edge[gpu]'") from None
    return runtime
