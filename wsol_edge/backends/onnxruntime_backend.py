"""ONNX Runtime backend: the embedded default (CPU); CUDA/TensorRT execution providers when installed."""
from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np

from ..export_metadata import MetadataError, decode
from .base import Backend, BackendError

PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider"}


X86_MACHINES = ("x86_64", "amd64", "i386", "i686")


def int8_saturation_warning(meta: dict, machine: str, vnni: bool | None) -> str | None:
    """A one-line warning for an INT8 model with 8-bit weights run by ONNX Runtime on an x86 CPU
    without VNNI: those kernels add u8 x s8 products in pairs into int16, which saturates (up to
    2 x 255 x 127) unless the weights are 7-bit. How much that costs depends on the model: the cub50 CAM's
    GT-known fell from 72.3 to 60.5 (README, INT8). ARM and VNNI CPUs add into int32."""
    if meta.get("precision") != "int8" or meta.get("reduce_range") or vnni is not False:
        return None
    if machine.lower() not in X86_MACHINES:
        return None
    return ("warning: this INT8 model has 8-bit weights, which can saturate ONNX Runtime's int8 kernels on this "
            "x86 CPU without VNNI and cost accuracy; export it with --activation-type uint8 --reduce-range")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise BackendError(f"model file {path} not found")
        available = ort.get_available_providers()
        wanted = [PROVIDER_ALIASES.get(p.lower(), p) for p in (providers or ["cpu"])]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise BackendError(f"ONNX Runtime here lacks {', '.join(missing)} (available: {', '.join(available)})")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=wanted)
        except Exception as exc:
            raise BackendError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None
        try:
            self.meta = decode(self.session.get_modelmeta().custom_metadata_map, str(path))
        except MetadataError as exc:
            raise BackendError(str(exc)) from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        for required in ("logits", "cams", "class_ids"):
            if required not in self.outputs:
                raise BackendError(f"{path}: output {required!r} missing (outputs: {', '.join(self.outputs)})")
        self.precision = str(self.meta.get("precision", "fp32"))
        self.device = "cuda" if wanted[0] != "CPUExecutionProvider" else "cpu"
        if self.device == "cpu" and self.precision == "int8":  # /proc/cpuinfo read only where it matters
            from ..runinfo import cpu_has_vnni

            warning = int8_saturation_warning(self.meta, platform.machine(), cpu_has_vnni())
            if warning:
                print(f"{warning} ({path})", file=sys.stderr)
        self.path = path

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = self.check_batch(images)
        values = self.session.run(self.outputs, {"images": images})
        return dict(zip(self.outputs, values))

    def close(self) -> None:
        self.session = None
