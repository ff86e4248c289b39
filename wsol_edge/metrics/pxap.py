"""PxAP: area under the pixel precision-recall curve (wsolevaluation's MaskEvaluator)."""
from __future__ import annotations

import numpy as np

from ..postprocess.boxes import DEFAULT_CAM_THRESHOLDS


class PxAPAccumulator:
    """Histograms of score-map values over foreground and background pixels; mask value 255 is
    "ignore" and excluded. Bins have right edges at the CAM thresholds plus [1, 2, 3], as in
    wsolevaluation, so a score of exactly 1.0 counts at every threshold."""

    def __init__(self, cam_thresholds=DEFAULT_CAM_THRESHOLDS):
        self.edges = np.concatenate([np.asarray(cam_thresholds, dtype=np.float64), [1.0, 2.0, 3.0]])
        self.fg = np.zeros(len(self.edges) - 1, dtype=np.float64)
        self.bg = np.zeros(len(self.edges) - 1, dtype=np.float64)

    def add(self, scoremap: np.ndarray, mask: np.ndarray) -> None:
        if scoremap.shape != mask.shape:
            raise ValueError(f"score map {scoremap.shape} and mask {mask.shape} differ in shape")
        keep = mask != 255
        self.fg += np.histogram(scoremap[keep & (mask == 1)], bins=self.edges)[0]
        self.bg += np.histogram(scoremap[keep & (mask == 0)], bins=self.edges)[0]

    def compute(self) -> float:
        tp = self.fg[::-1].cumsum()
        fp = self.bg[::-1].cumsum()
        fn = self.fg.sum() - tp
        if (tp + fn <= 0).all():
            raise ValueError("PxAP: no foreground pixel in the evaluated masks")
        valid = (tp + fp) != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(valid, tp / np.maximum(tp + fp, 1), 0.0)
        recall = tp / (tp + fn)
        return float((precision[1:] * np.diff(recall))[valid[1:]].sum() * 100)
