"""Backends picked from the model file: .onnx -> ONNX Runtime, .engine/.trt/.plan -> TensorRT,
.pt -> PyTorch; a triton://HOST/NAME address -> Triton Inference Server (gRPC). Importing this package
imports neither torch nor TensorRT."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .base import Backend, BackendError

ONNX_SUFFIXES = (".onnx",)
TENSORRT_SUFFIXES = (".engine", ".trt", ".plan")
TORCH_SUFFIXES = (".pt", ".pth")
TRITON = "triton://"  # a model served by Triton Inference Server (triton_backend.py), in place of a suffix


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def is_triton_address(model) -> bool:
    return isinstance(model, str) and model.lower().startswith(TRITON)


def load_backend(path: str | Path, *, providers: list[str] | None = None, threads: int | None = None,
                 device: str = "cpu", half: bool = False, threshold: float | None = None,
                 all_cams: bool = False, tta: str | None = None,
                 tta_sizes: tuple[int, ...] | None = None, input_size: int | None = None) -> Backend:
    """The backend for a model file. ``all_cams`` asks a PyTorch checkpoint for every class's map
    (``cams_all``); ONNX models and engines have that output only when exported with it.
    ``device`` (cpu, cuda, cuda:N or auto), ``half`` (FP16), ``tta``, ``tta_sizes`` and ``input_size`` (the
    size served, PyTorchBackend) apply to PyTorch checkpoints; an ONNX model or engine carries its test-time
    augmentation and its input size in the graph (``export onnx --tta``, ``--input-size``)."""
    triton = is_triton_address(path)
    suffix = TRITON if triton else Path(path).suffix.lower()
    path = path if triton else Path(path)
    if suffix not in ONNX_SUFFIXES + TENSORRT_SUFFIXES + TORCH_SUFFIXES + (TRITON,):
        raise BackendError(f"{path}: unknown model type {suffix!r}; use .onnx, .engine/.trt/.plan, .pt or "
                           "triton://HOST[:PORT]/NAME")
    if (tta not in (None, "none") or tta_sizes) and suffix not in TORCH_SUFFIXES:
        raise BackendError(f"{path}: test-time augmentation applies to PyTorch checkpoints only; an ONNX model or "
                           "engine serves it when exported with --tta / --tta-sizes")
    unused = options_it_ignores(suffix, providers=providers, threads=threads, device=device, half=half,
                                threshold=threshold, input_size=input_size)
    if unused:
        raise BackendError(f"{path}: {unused}")
    if suffix in TORCH_SUFFIXES:
        if not torch_installed():  # the base install, the runtime alone
            raise BackendError(f"{path}: a PyTorch checkpoint needs torch, which the base install leaves out: "
                               "pip install \"wsol_edge[train]\", or serve the model's ONNX export")
        from .pytorch_backend import PyTorchBackend

        return PyTorchBackend(path, device=device, half=half, threshold=threshold, all_cams=all_cams, tta=tta,
                              tta_sizes=tta_sizes, input_size=input_size)
    if suffix in ONNX_SUFFIXES:
        from .onnxruntime_backend import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(path, providers=providers, threads=threads)
    elif triton:
        from .triton_backend import TritonBackend

        backend = TritonBackend(str(path))
    else:
        from .tensorrt_backend import TensorRTBackend

        backend = TensorRTBackend(path)
    if all_cams and "cams_all" not in backend.outputs:
        backend.close()
        raise BackendError(f"{path}: all_cams asks for every class's map, which this model does not return "
                           "(export it with --with-all-cams)")
    return backend


def options_it_ignores(suffix: str, *, providers, threads, device, half, threshold, input_size) -> str | None:
    """Why options given do not apply to this model type, or None. A backend that dropped another's
    option without a word would serve something other than what was asked: an ONNX model "on cuda"
    still on the CPU, a "half" engine in its own precision, a threshold that never reaches the boxes."""
    default_providers = [p.lower() for p in providers or ["cpu"]] == ["cpu"]
    if suffix in TORCH_SUFFIXES:
        if threads or not default_providers:
            return ("providers and threads apply to ONNX Runtime; a PyTorch checkpoint runs where device says, "
                    "with torch's threads (torch.set_num_threads)")
        return None
    where = ("where providers say (cpu, cuda, tensorrt)" if suffix in ONNX_SUFFIXES
             else "where the server's config puts it" if suffix == TRITON else "on the GPU it was built for")
    if str(device).strip().lower() != "cpu":
        return f"device {device} applies to a .pt checkpoint; this model runs {where}"
    given = [name for name, value in (("half", half or None), ("threshold", threshold), ("input_size", input_size))
             if value is not None]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        return (f"{', '.join(given)} {verb} to a .pt checkpoint; this model has its precision, input size and CAM "
                "threshold from export (a Localizer takes threshold=... for any model)")
    if suffix not in ONNX_SUFFIXES and (threads or not default_providers):
        model = "a Triton model" if suffix == TRITON else "a TensorRT engine"
        return f"providers and threads apply to ONNX Runtime here; {model} runs {where}"
    return None


__all__ = ["Backend", "BackendError", "load_backend"]
