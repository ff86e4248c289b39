"""CAM overlays for a person to look at: heat map over the image, GT boxes green, prediction red."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_write_bytes


def cam_overlay(image_rgb: np.ndarray, scoremap: np.ndarray, gt_boxes=(), pred_box=None, alpha: float = 0.45,
                label: str | None = None) -> np.ndarray:
    """BGR uint8 overlay at the score map's resolution."""
    h, w = scoremap.shape
    base = cv2.cvtColor(cv2.resize(image_rgb, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    heat = cv2.applyColorMap((np.clip(scoremap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(heat, alpha, base, 1 - alpha, 0)
    for b in np.asarray(gt_boxes).reshape(-1, 4):
        cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 255, 0), 2)
    if pred_box is not None:
        b = np.asarray(pred_box).astype(int)
        cv2.rectangle(out, (b[0], b[1]), (b[2], b[3]), (0, 0, 255), 2)
    if label:
        cv2.putText(out, label[:40], (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_png(path: str | Path, image_bgr: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image_bgr)
    if not ok:
        raise ValueError(f"cannot encode {path} as PNG")
    atomic_write_bytes(path, buf.tobytes())
