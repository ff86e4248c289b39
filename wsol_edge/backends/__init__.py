"""Backends picked from the model file: .onnx -> ONNX Runtime, .engine/.trt/.plan -> TensorRT,
.pt -> PyTorch. Importing this package imports neither torch nor TensorRT."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .base import Backend, BackendError

ONNX_SUFFIXES = (".onnx",)
TENSORRT_SUFFIXES = (".engine", ".trt", ".plan")
TORCH_SUFFIXES = (".pt", ".pth")


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def load_backend(path: str | Path, *, providers: list[str] | None = None, threads: int | None = None,
                 device: str = "cpu", half: bool = False, threshold: float | None = None,
                 all_cams: bool = False, tta: str | None = None,
                 tta_sizes: tuple[int, ...] | None = None, input_size: int | None = None) -> Backend:
    """The backend for a model file. ``all_cams`` asks a PyTorch checkpoint for every class's map
    (``cams_all``); ONNX models and engines have that output only when exported with it.
    ``device`` (cpu, cuda, cuda:N or auto), ``half`` (FP16), ``tta``, ``tta_sizes`` and ``input_size`` (the
    size served, PyTorchBackend) apply to PyTorch checkpoints; an ONNX model or engine carries its test-time
    augmentation and its input size in the graph (``export onnx --tta``, ``--input-size``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if (tta not in (None, "none") or tta_sizes) and suffix not in TORCH_SUFFIXES:
        raise BackendError(f"{path}: test-time augmentation applies to PyTorch checkpoints only; an ONNX model or "
                           "engine serves it when exported with --tta / --tta-sizes")
    if suffix in ONNX_SUFFIXES:
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, providers=providers, threads=threads)
    if suffix in TENSORRT_SUFFIXES:
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend(path)
    if suffix in TORCH_SUFFIXES:
        if not torch_installed():  # the base install, the runtime alone
            raise BackendError(f"{path}: a PyTorch checkpoint needs torch, which the base install leaves out: "
                               "pip install \"wsol_edge[train]\", or serve the model's ONNX export")
        from .pytorch_backend import PyTorchBackend

        return PyTorchBackend(path, device=device, half=half, threshold=threshold, all_cams=all_cams, tta=tta,
                              tta_sizes=tta_sizes, input_size=input_size)
    raise BackendError(f"{path}: unknown model type {suffix!r}; use .onnx, .engine/.trt/.plan or .pt")


__all__ = ["Backend", "BackendError", "load_backend"]
