"""A grid of CAM overlays: one row per model (backend/precision), one column per image, so a person
sees what a precision change does to the maps and boxes, not only to the metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def row_label(backend, model_path: str | Path) -> str:
    path = Path(model_path)
    return f"{backend.name} {backend.precision} ({path.parent.name}/{path.name})"  # checkpoints share a file name


def read_frames(images: list[Path]) -> list[np.ndarray]:
    """The RGB images that can be read (a corrupt file among the samples costs its column, not the grid)."""
    from wsol_edge.imageio import read_image_rgb

    from .cli import readable_images

    return readable_images(images, read_image_rgb)


def overlay_grid(models: list[str | Path], frames: list[np.ndarray], *, threads: int | None = None,
                 threshold: float | None = None) -> np.ndarray:
    """BGR uint8 image: rows = models, columns = RGB frames (read_frames), each cell the model's top-1
    map and box in its input frame, labelled with the row's backend/precision and the predicted class."""
    import cv2

    from wsol_edge.backends import load_backend
    from wsol_edge.overlays import cam_overlay
    from wsol_edge.postprocess import box_from_scoremap
    from wsol_edge.runtime import Localizer

    if not models or not frames:
        raise ValueError("the overlay grid needs at least one model and one image")
    rows = []
    for model in models:
        backend = load_backend(model, threads=threads) if str(model).endswith(".onnx") else load_backend(model)
        with Localizer(backend, threshold=threshold) as loc:
            cells = []
            for rgb in frames:
                res = loc(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                box = box_from_scoremap(res.scoremap, loc.threshold)
                cells.append(cam_overlay(rgb, res.scoremap, pred_box=box,
                                         label=f"{res.class_name[:22]} {res.score:.2f}"))
            row = np.concatenate(cells, axis=1)
            band = np.zeros((18, row.shape[1], 3), np.uint8)
            cv2.putText(band, row_label(backend, model), (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                        cv2.LINE_AA)
            rows.append(np.concatenate([band, row], axis=0))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
