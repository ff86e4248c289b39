"""PyTorch backend (the reference): a training checkpoint served through the same contract."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .base import Backend, BackendError


class PyTorchBackend(Backend):
    name = "pytorch"

    def __init__(self, path: str | Path, device: str = "cpu", half: bool = False, threshold: float | None = None,
                 all_cams: bool = False, tta: str | None = None, tta_sizes: tuple[int, ...] | None = None,
                 input_size: int | None = None):
        """``all_cams``: also return ``cams_all`` [B, K, h, w] (what an ONNX model exported with
        ``--with-all-cams`` returns), for GT-known evaluation. ``tta``: "flip" serves the model with
        flip test-time augmentation (models/tta.py), ``tta_sizes`` at those input sizes too; the
        checkpoint's threshold was chosen without either, so it is then not carried over.
        ``input_size``: the images it is served (default: the trained size). Another size only with the
        trained size among ``tta_sizes``, so that the network still runs at the size it was trained at
        (the image resized to it inside the graph; e.g. trained at 288, served in the protocol's 224 frame)."""
        super().__init__()
        import torch

        from ..checkpoint import file_sha256
        from ..modelio import load_model
        from ..models.tta import augmenting_sizes, with_tta
        from ..torch_device import resolve_device

        try:  # before loading anything: "gpu" or "cuda:3" on a one-GPU machine would fail deep in torch
            device = resolve_device(device, flag="device")
        except ValueError as exc:
            raise BackendError(f"PyTorch backend: {exc}") from None
        tta = tta or "none"
        try:
            model, cfg, state = load_model(path)
            trained = int(cfg["input_size"])
            served = int(input_size) if input_size else trained
            if served != trained and trained not in (tta_sizes or ()):
                raise ValueError(f"{path} was trained at {trained}x{trained}; serving it at {served}x{served} "
                                 "would change the CAM grid and the threshold; serve it at the trained size, or "
                                 f"add {trained} to the test-time sizes (the image resized to it inside the graph)")
            sizes = augmenting_sizes(tta_sizes, served)
            model = with_tta(model, tta, served, sizes)
        except (FileNotFoundError, ValueError) as exc:
            raise BackendError(str(exc)) from None
        self.torch, self.device = torch, device
        self.model = model.to(device).eval()
        self.half, self.all_cams = half, all_cams
        if half:
            self.model.half()
        self.precision = "fp16" if half else "fp32"
        self.meta = {"class_names": cfg["class_names"], "mean": list(model.mean), "std": list(model.std),
                     "input_size": served, "method": cfg.get("method", "cam"), "backbone": cfg["backbone"],
                     "protocol": "wsoleval", "source_checkpoint_sha256": file_sha256(path), "precision": self.precision,
                     "tta": tta, "tta_sizes": list(sizes) if sizes else None}
        if threshold is not None:
            self.meta.update(cam_threshold=threshold, cam_threshold_source="given by the caller")
        elif tta != "none" or sizes:
            self.meta.update(cam_threshold=None, cam_threshold_source=None)
        else:  # chosen at the end of training (wsol_edge/threshold.py); None for older checkpoints
            self.meta.update(cam_threshold=state.get("cam_threshold"), cam_threshold_source=state.get("cam_threshold_source"))

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self._to_host(self._forward(self._to_device(images)))

    def infer_staged(self, images: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """``infer`` with its host-to-device copy, the model and the device-to-host copy timed
        apart (seconds: h2d, inference, d2h). On a GPU each part ends synchronised, which
        ``infer`` does not wait for between them; the speed harness uses this for GPU rows."""
        sync = self.torch.cuda.synchronize if self.device.startswith("cuda") else (lambda: None)
        t0 = time.perf_counter()
        x = self._to_device(images)
        sync()
        t1 = time.perf_counter()
        out = self._forward(x)
        sync()
        t2 = time.perf_counter()
        host = self._to_host(out)
        t3 = time.perf_counter()
        return host, {"h2d": t1 - t0, "inference": t2 - t1, "d2h": t3 - t2}

    def _to_device(self, images: np.ndarray):
        return self.torch.from_numpy(self.check_batch(images)).to(self.device)

    def _forward(self, x) -> dict:
        torch = self.torch
        with torch.inference_mode():
            if self.half:
                x = x.half()
            logits, feats = self.model(x)
            ids = logits.argmax(1)
            out = {"logits": logits, "cams": self.model.cams(feats, ids), "class_ids": ids}
            if self.all_cams:
                out["cams_all"] = self.model.all_cams(feats)
        return out

    @staticmethod
    def _to_host(out: dict) -> dict[str, np.ndarray]:
        return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in out.items()}
