"""ONNX Runtime backend: the embedded default (CPU); CUDA/TensorRT execution providers when installed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..export_metadata import MetadataError, decode
from .base import Backend, BackendError

PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider"}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise BackendError(f"model file {path} not found")
        available = ort.get_available_providers()
        wanted = [PROVIDER_ALIASES.get(p, p) for p in (providers or ["cpu"])]
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
        self.path = path

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = self.check_batch(images)
        values = self.session.run(self.outputs, {"images": images})
        return dict(zip(self.outputs, values))

    def close(self) -> None:
        self.session = None
