"""MaxBoxAcc / MaxBoxAccV2 / GT-known Loc under the wsoleval protocol, and the SAT variant."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..postprocess.boxes import DEFAULT_CAM_THRESHOLDS, boxes_at_thresholds, sat_box
from .iou import iou_matrix


class BoxAccumulator:
    """Per image and per CAM threshold, the best IoU of the predicted box(es) with any GT box.

    Keeping the whole (N, T) IoU table (not just counts) lets one pass give MaxBoxAcc at every
    IoU threshold, the best tau, and per-image correctness at that tau (for Top-1/Top-5 Loc).
    """

    def __init__(self, cam_thresholds=DEFAULT_CAM_THRESHOLDS, multi_contour: bool = False):
        self.cam_thresholds = np.asarray(cam_thresholds)
        self.multi_contour = multi_contour
        self._rows: list[np.ndarray] = []
        self._boxes: list[np.ndarray] = []

    def add(self, scoremap: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
        return self.add_boxes(self.boxes_of(scoremap), gt_boxes)

    def boxes_of(self, scoremap: np.ndarray) -> list[np.ndarray]:
        """The predicted box(es) of a score map at every CAM threshold, under this accumulator's rule."""
        return boxes_at_thresholds(scoremap, self.cam_thresholds, self.multi_contour)

    def add_boxes(self, per_tau: list[np.ndarray], gt_boxes: np.ndarray) -> np.ndarray:
        """Score boxes already found by ``boxes_of`` (one map served to many images is searched once)."""
        gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
        if len(gt) == 0:
            raise ValueError("an image without ground-truth boxes cannot be scored")
        row = np.array([iou_matrix(boxes, gt).max() for boxes in per_tau], dtype=np.float64)
        self._rows.append(row)
        if not self.multi_contour:
            self._boxes.append(np.stack([b[0] for b in per_tau]))
        return row

    @property
    def boxes(self) -> np.ndarray:
        """(N, T, 4): the largest-contour box of every image at every threshold (single-contour mode)."""
        return np.stack(self._boxes) if self._boxes else np.zeros((0, len(self.cam_thresholds), 4), np.int64)

    @property
    def ious(self) -> np.ndarray:
        return np.stack(self._rows) if self._rows else np.zeros((0, len(self.cam_thresholds)))

    def accuracy_curve(self, iou_threshold: float) -> np.ndarray:
        """Box accuracy (percent) at each CAM threshold for IoU >= iou_threshold/100."""
        ious = self.ious
        if len(ious) == 0:
            raise ValueError("no images were accumulated")
        return (ious >= iou_threshold / 100).sum(0) * 100.0 / float(len(ious))

    def max_box_acc(self, iou_thresholds: Sequence[float] = (30, 50, 70)) -> dict:
        out = {}
        for delta in iou_thresholds:
            curve = self.accuracy_curve(delta)
            best = int(np.argmax(curve))  # first maximum, as np.argmax / list.index do
            out[delta] = {"acc": float(curve[best]), "best_threshold": float(self.cam_thresholds[best])}
        return out

    def correct_at(self, threshold_index: int, iou_threshold: float = 50) -> np.ndarray:
        return self.ious[:, threshold_index] >= iou_threshold / 100


def max_box_acc(scoremaps, gt_boxes, *, cam_thresholds=DEFAULT_CAM_THRESHOLDS,
                iou_thresholds: Sequence[float] = (30, 50, 70), multi_contour: bool = False) -> dict:
    """MaxBoxAcc under the wsoleval rules.

    scoremaps: float array [N, H, W], already min-max normalised to [0, 1].
    gt_boxes: list of N int arrays [k, 4] (x0, y0, x1, y1 in the score maps' frame).
    Returns ``{iou_threshold: {"acc": percent, "best_threshold": tau}}``; ``multi_contour=True``
    gives the MaxBoxAccV2 boxes (mean the three accuracies for MaxBoxAccV2 itself).
    """
    scoremaps = np.asarray(scoremaps)
    if scoremaps.ndim != 3:
        raise ValueError(f"scoremaps must be [N, H, W], got shape {scoremaps.shape}")
    if len(gt_boxes) != len(scoremaps):
        raise ValueError(f"{len(scoremaps)} score maps but {len(gt_boxes)} GT box arrays")
    acc = BoxAccumulator(cam_thresholds, multi_contour)
    for m, g in zip(scoremaps, gt_boxes):
        acc.add(m, g)
    return acc.max_box_acc(iou_thresholds)


def max_box_acc_v2(scoremaps, gt_boxes, *, cam_thresholds=DEFAULT_CAM_THRESHOLDS) -> float:
    """Mean of multi-contour MaxBoxAcc over IoU 30/50/70 (Choe et al., CVPR 2020)."""
    res = max_box_acc(scoremaps, gt_boxes, cam_thresholds=cam_thresholds, multi_contour=True)
    return float(np.mean([r["acc"] for r in res.values()]))


class SatBoxAccumulator:
    """SAT protocol: largest 8-connected component, exclusive coordinates, empty mask -> whole image."""

    def __init__(self, cam_thresholds=DEFAULT_CAM_THRESHOLDS):
        self.cam_thresholds = np.asarray(cam_thresholds)
        self._rows: list[np.ndarray] = []

    def add(self, scoremap: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
        gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
        row = np.array([iou_matrix(sat_box(scoremap, t)[None], gt, inclusive=False).max()
                        for t in self.cam_thresholds])
        self._rows.append(row)
        return row

    ious = BoxAccumulator.ious
    accuracy_curve = BoxAccumulator.accuracy_curve
    max_box_acc = BoxAccumulator.max_box_acc
    correct_at = BoxAccumulator.correct_at
