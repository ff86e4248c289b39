"""Box extraction under the two protocols of evaluation-protocol.md.

``wsoleval`` (default) — rules 2-6 of the protocol page:
  bicubic upsample -> min-max normalise (constant or non-finite map -> zeros) ->
  ``u8 = floor(map*255)`` -> mask ``u8 > int(tau * max(u8))`` -> outer contours ->
  largest by ``cv2.contourArea`` (or all, multi-contour) -> ``cv2.boundingRect`` with
  x1/y1 clipped to size-1 -> no contour gives (0,0,0,0).

  "Largest" here is the contour with the largest *polygon area*, which can differ from the
  component with the most pixels (a thin ring has few pixels but a large polygon). Contours are
  the *outer* ones (RETR_EXTERNAL) as the protocol page says; wsolevaluation's code asks for
  RETR_TREE, which gives the same largest contour (a hole lies strictly inside its outer
  contour) but adds hole boxes in multi-contour mode.

``sat`` — SAT's evaluator: min-max (with epsilon) before a bilinear resize, one threshold,
  the 8-connected component with the most pixels, exclusive max coordinates, and an empty
  mask giving the whole image.
"""
from __future__ import annotations

import cv2
import numpy as np

# wsolevaluation builds its list with np.arange(0, 1, 0.01), whose values are not all the decimal
# literals (0.35000000000000003); int(tau * max) can depend on that, so the same construction is kept.
DEFAULT_CAM_THRESHOLDS = np.arange(0, 1, 0.01)


def upsample_cam(cam: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bicubic (cv2.INTER_CUBIC) resize of one raw CAM (h, w) to ``size`` (int or (w, h))."""
    wh = (size, size) if isinstance(size, int) else tuple(size)
    return cv2.resize(np.asarray(cam, dtype=np.float32), wh, interpolation=cv2.INTER_CUBIC)


def normalize_scoremap(cam: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1]; a constant map or one with NaN/inf becomes all zeros."""
    cam = np.array(cam, dtype=np.float32, copy=True)
    if not np.isfinite(cam).all():
        return np.zeros_like(cam)
    lo, hi = cam.min(), cam.max()
    if hi == lo:
        return np.zeros_like(cam)
    cam -= lo
    cam /= cam.max()
    return cam


def check_ivr_percentile(percentile: float) -> None:
    """IVR's percentile is a fraction of the map's pixels in [0, 1) (NaN fails the comparison too)."""
    if not 0.0 <= percentile < 1.0:
        raise ValueError(f"IVR percentile must be in [0, 1), got {percentile}")


def ivr_scoremap(cam: np.ndarray, percentile: float) -> np.ndarray:
    """Inferior value removal (Kim et al., "Normalization Matters in Weakly Supervised Object
    Localization", ICCV 2021): subtract the map's value at ``percentile`` of its sorted pixels (the
    element at index ``int(n * percentile)``, as their code takes it), clip at 0, divide by the max.
    A score map in [0, 1] whose minimum is 0 and maximum 1, so the protocol's min-max step leaves it
    as it is. ``percentile`` 0 gives min-max; a constant or non-finite map, or one whose top pixels
    all equal that value, becomes all zeros (the min-max guard)."""
    check_ivr_percentile(percentile)
    cam = np.array(cam, dtype=np.float32, copy=True)
    if not np.isfinite(cam).all() or cam.size == 0:
        return np.zeros_like(cam)
    k = int(cam.size * percentile)
    floor = np.partition(cam.ravel(), k)[k]  # the k-th smallest: the same element a full sort puts at k
    cam -= floor
    np.maximum(cam, 0, out=cam)
    top = cam.max()
    if top == 0:
        return np.zeros_like(cam)
    cam /= top
    return cam


def translate_map(scoremap: np.ndarray, offset_px=(0.0, 0.0)) -> np.ndarray:
    """``scoremap`` moved right by dx and down by dy pixels (``offset_px`` = (dx, dy); bilinear, edge
    pixels repeated into the gap): registers a map whose cells the resize draws off their receptive
    fields (wsol_edge/models/grid_offset.py). (0, 0) returns the map itself."""
    dx, dy = (float(v) for v in offset_px)
    if dx == 0 and dy == 0:
        return scoremap
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(scoremap, shift, (scoremap.shape[1], scoremap.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def cam_to_scoremap(cam: np.ndarray, size: int | tuple[int, int] = 224, offset_px=(0.0, 0.0),
                    ivr_percentile: float | None = None) -> np.ndarray:
    """Raw CAM (h, w) -> normalised score map at ``size`` (wsoleval rule 2), moved by ``offset_px``
    (translate_map) before normalising; min-max, or ``ivr_scoremap`` when ``ivr_percentile`` is given."""
    upsampled = translate_map(upsample_cam(cam, size), offset_px)
    if ivr_percentile is None:
        return normalize_scoremap(upsampled)
    return ivr_scoremap(upsampled, ivr_percentile)


def quantize_scoremap(scoremap: np.ndarray) -> np.ndarray:
    """``floor(map * 255)`` as uint8 (wsoleval rule 3); the product keeps the input's float type."""
    return (scoremap * 255).astype(np.uint8)


def check_scoremap(scoremap: np.ndarray) -> None:
    if scoremap.ndim != 2:
        raise ValueError(f"score map must be 2-D (H, W), got shape {scoremap.shape}")
    if np.isnan(scoremap).any():
        raise ValueError("score map contains NaN: normalise with normalize_scoremap first")
    if scoremap.min() < 0 or scoremap.max() > 1:
        raise ValueError(f"score map must lie in [0, 1], got [{scoremap.min()}, {scoremap.max()}]")


def _contours(u8: np.ndarray, threshold: float) -> tuple:
    thresh = int(threshold * np.max(u8))
    # THRESH_BINARY keeps pixels strictly greater than thresh (rule 3).
    _, binary = cv2.threshold(u8, thresh, 255, cv2.THRESH_BINARY)
    return cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]


def _box(contour: np.ndarray, width: int, height: int) -> list[int]:
    x, y, w, h = cv2.boundingRect(contour)
    return [x, y, min(x + w, width - 1), min(y + h, height - 1)]


def boxes_at_thresholds(scoremap: np.ndarray, thresholds=DEFAULT_CAM_THRESHOLDS,
                        multi_contour: bool = False) -> list[np.ndarray]:
    """For each threshold, the boxes (n, 4) int: the largest contour's box, or one per contour."""
    check_scoremap(scoremap)
    height, width = scoremap.shape
    u8 = quantize_scoremap(scoremap)
    out = []
    for tau in thresholds:
        contours = _contours(u8, tau)
        if len(contours) == 0:
            out.append(np.zeros((1, 4), dtype=np.int64))
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        out.append(np.array([_box(c, width, height) for c in contours], dtype=np.int64))
    return out


def box_from_scoremap(scoremap: np.ndarray, threshold: float) -> np.ndarray:
    """The single box (4,) of the largest contour at one threshold (wsoleval rules)."""
    return boxes_at_thresholds(scoremap, [threshold], multi_contour=False)[0][0]


def cams_to_boxes(cams: np.ndarray, threshold: float, size: int = 224,
                  ivr_percentile: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Batch of raw CAMs (B, h, w) -> (boxes (B, 4) int in the size x size frame, score maps);
    min-max score maps, or IVR ones when ``ivr_percentile`` is given (cam_to_scoremap)."""
    cams = np.asarray(cams)
    if cams.ndim != 3:
        raise ValueError(f"cams must be (B, h, w), got shape {cams.shape}")
    maps = (np.stack([cam_to_scoremap(c, size, ivr_percentile=ivr_percentile) for c in cams]) if len(cams)
            else np.zeros((0, size, size), np.float32))
    boxes = np.stack([box_from_scoremap(m, threshold) for m in maps]) if len(cams) else np.zeros((0, 4), np.int64)
    return boxes, maps


def sat_scoremap(cam: np.ndarray, size: int = 224, eps: float = 1e-8, offset_px=(0.0, 0.0)) -> np.ndarray:
    """SAT protocol: min-max normalise (with epsilon) the raw map, then bilinear resize (then
    translate_map by ``offset_px``)."""
    cam = np.asarray(cam, dtype=np.float32)
    if not np.isfinite(cam).all():
        cam = np.zeros_like(cam)
    cam = (cam - cam.min()) / (cam.max() - cam.min() + eps)
    return translate_map(cv2.resize(cam, (size, size), interpolation=cv2.INTER_LINEAR), offset_px)


def sat_box(scoremap: np.ndarray, threshold: float) -> np.ndarray:
    """SAT protocol box: 8-connected component with most pixels of ``map >= threshold``;
    exclusive max coordinates; an empty mask gives the whole image. Ties: lowest label."""
    height, width = scoremap.shape
    mask = (scoremap >= threshold).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return np.array([0, 0, width, height], dtype=np.int64)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(stats[best, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    return np.array([x, y, x + w, y + h], dtype=np.int64)


def largest_component_box(scoremap: np.ndarray, threshold: float) -> np.ndarray:
    """The CUDA kernels' rule, on the CPU: mask ``u8 > int(tau * max(u8))`` as in wsoleval, then the
    8-connected component with the most pixels (ties: the one whose first pixel in raster order
    comes first), box ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``; empty mask -> (0, 0, 0, 0).

    It differs from ``box_from_scoremap`` (largest contour *polygon area*) only in which region is
    "largest"; benchmarks/rule_difference.py measures how often that changes the box on real CAMs.
    """
    check_scoremap(scoremap)
    height, width = scoremap.shape
    u8 = quantize_scoremap(scoremap)
    _, binary = cv2.threshold(u8, int(threshold * np.max(u8)), 255, cv2.THRESH_BINARY)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return np.zeros(4, dtype=np.int64)
    areas = stats[1:, cv2.CC_STAT_AREA]
    tied = 1 + np.flatnonzero(areas == areas.max())
    best = int(tied[0])
    if len(tied) > 1:
        # OpenCV's block-based labelling numbers components in the order of 2x2 blocks, not of their
        # first pixels (a pixel of row 1 can come before one of row 0), so the tie is broken here.
        _, first_pixel = np.unique(labels, return_index=True)  # every label 0..n-1 occurs
        best = int(tied[np.argmin(first_pixel[tied])])
    x, y, w, h = (int(stats[best, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    return np.array([x, y, min(x + w, width - 1), min(y + h, height - 1)], dtype=np.int64)
