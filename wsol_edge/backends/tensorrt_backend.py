"""TensorRT 10 backend: cuda-python device buffers and streams, pinned host memory,
``execute_async_v3``, and two buffer slots so batch n+1 is copied in while batch n runs. Each slot has
an execution context of its own: a context runs one inference at a time (its activation memory is its
own), so two batches in flight on one context would write over each other.

Type-checked against ``tensorrt-stubs`` (TensorRT is not installable where this was written);
``.ci/typecheck_tensorrt.sh`` runs basedpyright on this file.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from ..cuda_runtime import cudart as get_cudart
from ..tensorrt_support import check_compatible, gpu_identity, read_sidecar, require_tensorrt
from .base import Backend, BackendError


def _check(result: tuple) -> Any:
    """cuda-python calls return (error, value...); raise on error, return the value(s)."""
    cudart = get_cudart()

    err, *rest = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)


class _Slot:
    """One set of pinned host + device buffers and a stream."""

    def __init__(self, specs: dict[str, tuple[tuple[int, ...], np.dtype]]):
        cudart = get_cudart()

        self.stream = _check(cudart.cudaStreamCreate())
        self.device: dict[str, int] = {}
        self.host: dict[str, np.ndarray] = {}
        self._pinned: list[int] = []
        for name, (shape, dtype) in specs.items():
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            self.device[name] = int(_check(cudart.cudaMalloc(nbytes)))
            ptr = int(_check(cudart.cudaMallocHost(nbytes)))
            self._pinned.append(ptr)
            buf = np.ctypeslib.as_array((ctypes.c_byte * nbytes).from_address(ptr))
            self.host[name] = buf.view(dtype).reshape(shape)
        self.batch = 0

    def free(self) -> None:
        cudart = get_cudart()

        for ptr in self.device.values():
            cudart.cudaFree(ptr)
        for ptr in self._pinned:
            cudart.cudaFreeHost(ptr)
        cudart.cudaStreamDestroy(self.stream)
        self.device, self._pinned = {}, []


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "cuda"

    def __init__(self, path: str | Path):
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"engine file {path} not found")
        try:
            require_tensorrt()
            self.meta = read_sidecar(path)
            gpu, cc = gpu_identity()
            import tensorrt

            check_compatible(self.meta, tensorrt.__version__, gpu, cc, str(path))
        except (ImportError, FileNotFoundError, ValueError, RuntimeError) as exc:
            raise BackendError(str(exc)) from None
        import tensorrt as trt

        self.precision = str(self.meta.get("precision", "fp32"))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendError(f"{path}: TensorRT could not deserialize the engine (corrupt, or built elsewhere)")
        self.engine = engine
        self.contexts = [engine.create_execution_context() for _ in range(2)]  # one per slot (module docstring)
        if any(c is None for c in self.contexts):
            raise BackendError(f"{path}: TensorRT could not create an execution context (out of GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if self.inputs != ["images"]:
            raise BackendError(f"{path}: expected one input 'images', found {self.inputs}")
        self.max_batch = int(engine.get_tensor_profile_shape("images", 0)[2][0])
        size = self.input_size
        probe = self.contexts[0]
        probe.set_input_shape("images", (self.max_batch, 3, size, size))
        specs = {n: (tuple(probe.get_tensor_shape(n)[:]), np.dtype(trt.nptype(engine.get_tensor_dtype(n))))
                 for n in names}
        self.slots = [_Slot(specs), _Slot(specs)]  # double buffering
        self._next = 0

    def submit(self, images: np.ndarray) -> int:
        """Start a batch on the next free slot; returns the slot id for ``collect``."""
        cudart = get_cudart()

        images = self.check_batch(images)
        b = len(images)
        if not 1 <= b <= self.max_batch:
            raise ValueError(f"batch {b} outside the engine's profile 1..{self.max_batch}")
        sid = self._next
        self._next = 1 - self._next
        slot = self.slots[sid]
        _check(cudart.cudaStreamSynchronize(slot.stream))  # the slot's previous batch is done
        slot.host["images"][:b] = images
        slot.batch = b
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(cudart.cudaMemcpyAsync(slot.device["images"], slot.host["images"].ctypes.data, images.nbytes, h2d,
                                      slot.stream))
        context = self.contexts[sid]
        context.set_input_shape("images", images.shape)
        for name, ptr in slot.device.items():
            context.set_tensor_address(name, ptr)
        if not context.execute_async_v3(slot.stream):
            raise BackendError("TensorRT execution failed")
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.outputs:
            nbytes = slot.host[name][:b].nbytes
            _check(cudart.cudaMemcpyAsync(slot.host[name].ctypes.data, slot.device[name], nbytes, d2h, slot.stream))
        return sid

    def collect(self, sid: int) -> dict[str, np.ndarray]:
        cudart = get_cudart()

        slot = self.slots[sid]
        _check(cudart.cudaStreamSynchronize(slot.stream))
        return {name: slot.host[name][:slot.batch].copy() for name in self.outputs}

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.collect(self.submit(images))

    def close(self) -> None:
        for slot in getattr(self, "slots", []):
            slot.free()
        self.slots = []
