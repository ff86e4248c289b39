"""Bootstrap over test images: how far the sampling of the test set alone moves a metric, and
whether a difference between two models scored on the same images survives it.

Each resample draws the test images with replacement and recomputes the metric whole, including
the choice of the best CAM threshold that MaxBoxAcc / GT-known Loc make on the evaluated set (so
that choice's optimism is resampled too). Two models are compared on the same draws (paired
bootstrap): the images both find hard cancel out. Percentile intervals (Efron & Tibshirani, 1993).
This measures test-sample noise only; the spread between training seeds comes on top of it and
needs retraining to measure.

The inputs are the per-image tables ``LocalizationScorer.per_image`` returns: IoU of the box(es)
with the GT at every CAM threshold (``ious_box`` single contour, ``ious_multi`` all contours) and
top-1 correctness. A resample is a row of counts (how often each image was drawn), so every metric
of every resample is one matrix product.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IOU_THRESHOLDS = (30, 50, 70)


def resample_counts(num_images: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, num_images) draw counts; each row sums to num_images."""
    if num_images < 1 or resamples < 1:
        raise ValueError("need at least one image and one resample")
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_images, np.full(num_images, 1.0 / num_images), size=resamples).astype(np.float64)


def _curves(ious: np.ndarray, iou_threshold: float, counts: np.ndarray) -> np.ndarray:
    """(R, T) box accuracy (percent) at each CAM threshold, per resample."""
    hits = (np.asarray(ious) >= iou_threshold / 100).astype(np.float64)
    return counts @ hits * 100.0 / counts.sum(1, keepdims=True)


def max_box_acc_v2(ious_multi: np.ndarray, counts: np.ndarray,
                   iou_thresholds: Sequence[float] = IOU_THRESHOLDS) -> np.ndarray:
    """(R,) mean over IoU thresholds of the best-threshold multi-contour box accuracy."""
    return np.mean([_curves(ious_multi, d, counts).max(1) for d in iou_thresholds], axis=0)


def gt_known_loc(ious_box: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(R,) single-contour box accuracy at IoU 50, at the best threshold of each resample."""
    return _curves(ious_box, 50, counts).max(1)


def top1_loc(ious_box: np.ndarray, top1: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(R,) share of images with the right top-1 class and IoU >= 0.5 at the threshold GT-known Loc
    picks in that resample (first maximum, as ``LocalizationScorer.compute``)."""
    best = _curves(ious_box, 50, counts).argmax(1)
    both = (counts * np.asarray(top1, np.float64)) @ (np.asarray(ious_box) >= 0.5).astype(np.float64)
    return both[np.arange(len(counts)), best] * 100.0 / counts.sum(1)


def top1_cls(top1: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return counts @ np.asarray(top1, np.float64) * 100.0 / counts.sum(1)


def metric_samples(tables: dict, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric the tables allow, per resample (rows of ``counts``)."""
    out = {}
    if "ious_multi" in tables:
        out["max_box_acc_v2"] = max_box_acc_v2(tables["ious_multi"], counts)
    out["gt_known_loc"] = gt_known_loc(tables["ious_box"], counts)
    if "top1" in tables:
        out["top1_loc"] = top1_loc(tables["ious_box"], tables["top1"], counts)
        out["top1_cls"] = top1_cls(tables["top1"], counts)
    return out


def interval(samples: np.ndarray, confidence: float = 0.95) -> list[float]:
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))]
