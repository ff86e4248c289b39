"""IoU with the protocol's conventions."""
from __future__ import annotations

import numpy as np


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray, inclusive: bool = True) -> np.ndarray:
    """IoU of every box in ``boxes_a`` (n, 4) with every box in ``boxes_b`` (m, 4) -> (n, m).

    ``inclusive=True`` is the wsoleval rule (pixel coordinates, area (x1-x0+1)(y1-y0+1), an
    intersection counted only when max >= min on both axes); ``False`` is exclusive coordinates
    (SAT protocol).
    """
    a = np.asarray(boxes_a, dtype=np.int64).reshape(-1, 1, 4)
    b = np.asarray(boxes_b, dtype=np.int64).reshape(1, -1, 4)
    one = 1 if inclusive else 0
    min_x = np.maximum(a[..., 0], b[..., 0])
    min_y = np.maximum(a[..., 1], b[..., 1])
    max_x = np.minimum(a[..., 2], b[..., 2])
    max_y = np.minimum(a[..., 3], b[..., 3])
    area_a = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
    area_b = (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one)
    inter = (max_x - min_x + one) * (max_y - min_y + one)
    inter = np.where((max_x < min_x) | (max_y < min_y), 0, inter)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return iou.astype(np.float64)
