"""Image -> network input, shared by training, evaluation, export checks and the runtime.

Kept free of torch so the edge runtime (numpy + OpenCV) preprocesses exactly as training did.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize ignoring aspect ratio (the WSOL evaluation frame is a plain 224x224 resize).

    Bilinear (cv2.INTER_LINEAR), not area or PIL's antialiased resize: with it the untrained
    ImageNet EfficientNet-Lite0 CAM on cub50 test gives MaxBoxAcc 96.04/54.79/9.00, exactly the
    protocol page's reference 96.0/54.8/9.0 (INTER_AREA gave 96.1/55.1/9.0).
    """
    return cv2.resize(image, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)


def normalize(image_rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 RGB HxWx3 -> float32 3xHxW, (x/255 - mean) / std."""
    x = image_rgb.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def eval_input(image_rgb: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The evaluation/inference transform: plain resize to size x size, then normalise."""
    return normalize(resize(image_rgb, size, size), mean, std)


def boxes_to_frame(boxes: np.ndarray, image_wh: tuple[int, int], size: int) -> np.ndarray:
    """Map boxes (x0,y0,x1,y1 in original pixels) to the size x size frame: int(x * size / W).

    The multiply-then-divide order and truncation follow wsolevaluation's resize_bbox, so the
    integer boxes match it exactly (see evaluation-protocol.md, rule 1).
    """
    w, h = image_wh
    out = np.zeros((len(boxes), 4), dtype=np.int64)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=np.float64).tolist()):
        out[i] = (int(x0 * size / w), int(y0 * size / h), int(x1 * size / w), int(y1 * size / h))
    return out


def boxes_from_frame(boxes: np.ndarray, image_wh: tuple[int, int], size: int) -> np.ndarray:
    """Map boxes from the size x size frame back to original-image pixels (float)."""
    w, h = image_wh
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scale = np.array([w / size, h / size, w / size, h / size])
    return b * scale
