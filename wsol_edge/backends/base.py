"""One interface for every backend (after Polygraphy's runners): load, infer, close.

``infer(images)`` takes a normalised float32 batch [B,3,H,W] and returns a dict with at least
``logits`` [B,K], ``cams`` [B,h,w] (raw CAM of the top-1 class) and ``class_ids`` [B]; models
exported with all-class CAMs also return ``cams_all`` [B,K,h,w].
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class BackendError(RuntimeError):
    """A model file cannot be served by a backend (missing, mismatched, or its runtime absent)."""


class Backend(ABC):
    name = "backend"
    precision = "fp32"
    device = "cpu"

    def __init__(self):
        self.meta: dict = {}

    @property
    def input_size(self) -> int:
        return int(self.meta["input_size"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    def check_batch(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        s = self.input_size
        if images.ndim != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(f"{self.name}: expected images [B,3,{s},{s}], got {list(images.shape)}")
        return images

    @abstractmethod
    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        ...

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
