"""Finding TensorRT and the sidecar metadata of engines (shared by the builder and the runtime).

TensorRT is imported lazily and detected by real attributes: the ``tensorrt-stubs`` package
creates an importable but empty ``tensorrt`` module, so a bare ``import`` proves nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

from .cuda_runtime import cudart as get_cudart
from .export_metadata import check_metadata

SIDECAR_SUFFIX = ".json"


class TensorRTUnavailable(ImportError):
    pass


def require_tensorrt() -> None:
    """Raise TensorRTUnavailable unless real TensorRT is importable. Callers then write
    ``import tensorrt as trt`` themselves, so the type checker sees every call against the stubs
    (a module returned from here would be typed ``ModuleType`` and hide misspelled APIs)."""
    try:
        import tensorrt as trt
    except ImportError:
        raise TensorRTUnavailable(
            "TensorRT is not installed: install NVIDIA TensorRT 10 (pip install tensorrt, or JetPack on Jetson), "
            "or use the .onnx model with ONNX Runtime") from None
    if not (hasattr(trt, "Builder") and hasattr(trt, "__version__")):
        raise TensorRTUnavailable("the 'tensorrt' module here is not TensorRT (type stubs only?)")


def gpu_identity() -> tuple[str, str]:
    """(GPU name, compute capability such as "87" or "90") of device 0, via cuda-python."""
    cudart = get_cudart()

    err, props = cudart.cudaGetDeviceProperties(0)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"no CUDA device ({err})")
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.split("\x00")[0], f"{props.major}{props.minor}"


def sidecar_path(engine_path: str | Path) -> Path:
    return Path(str(engine_path) + SIDECAR_SUFFIX)


def read_sidecar(engine_path: str | Path) -> dict:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise FileNotFoundError(f"{engine_path}: metadata sidecar {path.name} is missing (rebuild the engine with "
                                "python -m wsol_edge.export engine)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt metadata sidecar ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: corrupt metadata sidecar (a JSON object expected, got {type(meta).__name__})")
    check_metadata(meta, str(path))
    return meta


def check_compatible(meta: dict, trt_version: str, gpu_name: str, compute_capability: str, source: str) -> None:
    """Refuse an engine built for another TensorRT version or GPU, unless it was built compatible."""
    built = meta.get("tensorrt", {})
    if built.get("version") != trt_version and not built.get("version_compatible"):
        raise ValueError(f"{source}: engine built with TensorRT {built.get('version')}, this is {trt_version}; "
                         "rebuild it here (or build with --version-compat)")
    if built.get("hardware_compat", "none") == "none":
        if built.get("compute_capability") != compute_capability:
            raise ValueError(f"{source}: engine built for {built.get('gpu')} (sm_{built.get('compute_capability')}), "
                             f"this GPU is {gpu_name} (sm_{compute_capability}); rebuild it here")
