"""max_box_acc against an independent, deliberately naive transcription of the wsoleval rules,
on random and adversarial score maps: identical accuracies and thresholds are required."""
import cv2
import numpy as np
import pytest

from wsol_edge.metrics import max_box_acc

THRESHOLDS = list(np.arange(0, 1, 0.01))


def reference_max_box_acc(maps, gts, thresholds, iou_thresholds, multi):
    correct = {d: [0] * len(thresholds) for d in iou_thresholds}
    for scoremap, gt in zip(maps, gts):
        h, w = scoremap.shape
        u8 = np.zeros((h, w), np.uint8)
        for y in range(h):
            for x in range(w):
                u8[y, x] = int(scoremap[y, x] * 255)  # python int() truncates like astype(uint8)
        top = int(u8.max())
        for ti, tau in enumerate(thresholds):
            cut = int(tau * top)
            mask = np.where(u8 > cut, 255, 0).astype(np.uint8)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if not contours:
                boxes = [(0, 0, 0, 0)]
            else:
                if not multi:
                    best, best_area = None, -1.0
                    for c in contours:  # first contour wins ties, as max() does
                        a = cv2.contourArea(c)
                        if a > best_area:
                            best, best_area = c, a
                    contours = [best]
                boxes = []
                for c in contours:
                    x, y, bw, bh = cv2.boundingRect(c)
                    boxes.append((x, y, min(x + bw, w - 1), min(y + bh, h - 1)))
            best_iou = 0.0
            for b in boxes:
                for g in gt:
                    ix = min(b[2], g[2]) - max(b[0], g[0]) + 1
                    iy = min(b[3], g[3]) - max(b[1], g[1]) + 1
                    inter = ix * iy if (ix > 0 and iy > 0) else 0
                    ua = (b[2] - b[0] + 1) * (b[3] - b[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
                    best_iou = max(best_iou, inter / ua)
            for d in iou_thresholds:
                if best_iou >= d / 100:
                    correct[d][ti] += 1
    out = {}
    for d in iou_thresholds:
        accs = [c * 100.0 / len(maps) for c in correct[d]]
        i = accs.index(max(accs))
        out[d] = {"acc": accs[i], "best_threshold": float(thresholds[i])}
    return out


def smooth_random(rng, h, w):
    low = rng.random((rng.integers(2, 8), rng.integers(2, 8))).astype(np.float32)
    m = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    m -= m.min()
    return m / m.max() if m.max() > 0 else m


def adversarial(rng, h, w):
    kind = rng.integers(0, 7)
    m = np.zeros((h, w), np.float32)
    if kind == 0:  # checkerboard
        m[(np.add.outer(np.arange(h), np.arange(w)) % 2) == 0] = 1.0
    elif kind == 1:  # one-pixel blobs
        for _ in range(5):
            m[rng.integers(0, h), rng.integers(0, w)] = rng.random()
        m[0, 0] = 1.0
    elif kind == 2:  # values exactly on quantisation edges k/255 and k/100
        m = (rng.integers(0, 256, (h, w)) / 255).astype(np.float32)
        m[rng.random((h, w)) < 0.3] = rng.integers(0, 100) / 100
    elif kind == 3:  # constant maps (0 and 1)
        m[:] = float(rng.integers(0, 2))
    elif kind == 4:  # nested rings (holes, outer contours)
        for r, v in ((w // 2 - 1, 1.0), (w // 3, 0.0), (w // 5, 0.7)):
            cv2.circle(m, (w // 2, h // 2), r, v, -1)
    elif kind == 5:  # equal-area twins: ties go to the first contour
        m[2:6, 2:6] = 1.0
        m[h - 6:h - 2, w - 6:w - 2] = 1.0
    else:  # blocks touching the borders (clip)
        m[h // 2:, w // 2:] = 1.0
        m[: h // 3, : w // 4] = 0.5
    return m


def random_gts(rng, h, w):
    k = rng.integers(1, 4)
    x0 = rng.integers(0, w - 1, k); y0 = rng.integers(0, h - 1, k)
    x1 = np.minimum(x0 + rng.integers(0, w, k), w - 1); y1 = np.minimum(y0 + rng.integers(0, h, k), h - 1)
    return np.stack([x0, y0, x1, y1], 1)


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("kind", ["random", "adversarial"])
def test_matches_independent_reference(kind, multi):
    rng = np.random.default_rng(1 if kind == "random" else 2)
    h = w = 28
    maker = smooth_random if kind == "random" else adversarial
    maps = np.stack([maker(rng, h, w) for _ in range(40)])
    gts = [random_gts(rng, h, w) for _ in range(40)]
    ious = (30, 50, 70)
    assert max_box_acc(maps, gts, cam_thresholds=THRESHOLDS, iou_thresholds=ious, multi_contour=multi) == \
        reference_max_box_acc(maps, gts, THRESHOLDS, ious, multi)


def test_matches_reference_at_full_resolution():
    rng = np.random.default_rng(3)
    maps = np.stack([smooth_random(rng, 224, 224) for _ in range(3)])
    gts = [random_gts(rng, 224, 224) for _ in range(3)]
    thresholds = THRESHOLDS[::7]
    assert max_box_acc(maps, gts, cam_thresholds=thresholds) == reference_max_box_acc(maps, gts, thresholds, (30, 50, 70), False)
