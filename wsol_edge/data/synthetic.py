"""A small procedural WSOL dataset: one object of K classes on a textured background.

Every image is a pure function of (seed, index), so tests get identical data anywhere, and
boxes and masks are exact (the box is the tight box of the mask).
"""
from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from .samples import Sample, SampleSet

SHAPES = ("disc", "square", "triangle", "cross", "ring", "diamond", "bar", "star")


def _draw(kind: str, mask: np.ndarray, cx: int, cy: int, r: int) -> None:
    if kind == "disc":
        cv2.circle(mask, (cx, cy), r, 1, -1)
    elif kind == "square":
        cv2.rectangle(mask, (cx - r, cy - r), (cx + r, cy + r), 1, -1)
    elif kind == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    elif kind == "cross":
        t = max(r // 3, 1)
        cv2.rectangle(mask, (cx - r, cy - t), (cx + r, cy + t), 1, -1)
        cv2.rectangle(mask, (cx - t, cy - r), (cx + t, cy + r), 1, -1)
    elif kind == "ring":
        cv2.circle(mask, (cx, cy), r, 1, -1)
        cv2.circle(mask, (cx, cy), max(r // 2, 1), 0, -1)
    elif kind == "diamond":
        pts = np.array([[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    elif kind == "bar":
        cv2.rectangle(mask, (cx - r, cy - max(r // 3, 1)), (cx + r, cy + max(r // 3, 1)), 1, -1)
    elif kind == "star":
        ang = np.linspace(0, 2 * np.pi, 11)[:-1] - np.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    else:
        raise ValueError(kind)


def render(seed: int, index: int, num_classes: int, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(image RGB uint8, mask uint8 {0,1}, label) for one synthetic sample."""
    rng = np.random.default_rng([seed, index])
    label = int(index % num_classes)
    # Background: low-frequency colour noise plus stripes, so "anything non-flat" is not the object.
    low = rng.integers(40, 200, size=(6, 6, 3)).astype(np.float32)
    bg = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = 20 * np.sin((xx * rng.uniform(0.05, 0.3) + yy * rng.uniform(0.05, 0.3)))[..., None]
    image = np.clip(bg + stripes + rng.normal(0, 8, (size, size, 3)), 0, 255)
    r = int(rng.integers(size // 8, size // 4))
    cx = int(rng.integers(r + 1, size - r - 1))
    cy = int(rng.integers(r + 1, size - r - 1))
    mask = np.zeros((size, size), np.uint8)
    _draw(SHAPES[label % len(SHAPES)], mask, cx, cy, r)
    hue = (label * 180 // max(num_classes, 1)) % 180
    colour = cv2.cvtColor(np.uint8([[[hue, 230, 230]]]), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    texture = rng.normal(0, 10, (size, size, 1))
    image = np.where(mask[..., None] == 1, np.clip(colour + texture, 0, 255), image)
    return image.astype(np.uint8), mask, label


def _image(seed, index, k, size):
    return render(seed, index, k, size)[0]


def _mask(seed, index, k, size):
    return render(seed, index, k, size)[1]


def synthetic_dataset(num_images: int = 64, num_classes: int = 4, size: int = 96, seed: int = 0,
                      split: str = "train") -> SampleSet:
    """``num_images`` samples cycling through ``num_classes`` shapes; train/test differ by seed."""
    if not 1 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be in 1..{len(SHAPES)}")
    split_seed = seed * 2 + (0 if split == "train" else 1)
    samples = []
    for i in range(num_images):
        mask = _mask(split_seed, i, num_classes, size)
        ys, xs = np.nonzero(mask)
        box = np.array([[xs.min(), ys.min(), xs.max(), ys.max()]], dtype=np.float64)
        samples.append(Sample(image_id=f"syn_{split}_{i:05d}", label=i % num_classes, boxes=box,
                              size=(size, size),
                              loader=partial(_image, split_seed, i, num_classes, size),
                              mask_loader=partial(_mask, split_seed, i, num_classes, size)))
    return SampleSet(f"synthetic:{split}", samples, [SHAPES[c] for c in range(num_classes)])
