"""Reader for the wsolevaluation metadata layout (CUB, ILSVRC, OpenImages).

``<metadata_root>/<split>/{image_ids.txt, class_labels.txt, image_sizes.txt, localization.txt}``
with image paths relative to ``data_root``. localization.txt lines are ``image_id,x0,y0,x1,y1``
(boxes) or, for OpenImages, ``image_id,mask_path,ignore_path`` (masks).
"""
from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from ..imageio import ImageReadError
from .samples import Sample, SampleSet, as_boxes


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"missing wsolevaluation metadata file {path}")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _load_mask(mask_paths: list[Path], ignore_path: Path | None) -> np.ndarray:
    mask = None
    for p in mask_paths:
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise ImageReadError(f"{p}: cannot read mask")
        mask = (m > 127) if mask is None else (mask | (m > 127))
    out = mask.astype(np.uint8)
    if ignore_path is not None:
        ign = cv2.imread(str(ignore_path), cv2.IMREAD_GRAYSCALE)
        if ign is None:
            raise ImageReadError(f"{ignore_path}: cannot read ignore mask")
        out[ign > 127] = 255
    return out


def read_wsoleval(metadata_root: str | Path, data_root: str | Path, split: str,
                  class_names: list[str] | None = None) -> SampleSet:
    meta = Path(metadata_root) / split
    data_root = Path(data_root)
    ids = _lines(meta / "image_ids.txt")
    labels = {}
    for ln in _lines(meta / "class_labels.txt"):
        image_id, label = ln.split(",")
        labels[image_id] = int(label)
    sizes = {}
    if (meta / "image_sizes.txt").is_file():
        for ln in _lines(meta / "image_sizes.txt"):
            image_id, w, h = ln.split(",")
            sizes[image_id] = (int(w), int(h))
    boxes: dict[str, list] = defaultdict(list)
    masks: dict[str, list] = defaultdict(list)
    ignores: dict[str, Path] = {}
    for ln in _lines(meta / "localization.txt"):
        parts = ln.split(",")
        if len(parts) == 5:
            boxes[parts[0]].append(tuple(map(float, parts[1:])))
        elif len(parts) == 3:
            masks[parts[0]].append(data_root / parts[1])
            if parts[2]:
                ignores[parts[0]] = data_root / parts[2]
        else:
            raise ValueError(f"{meta / 'localization.txt'}: cannot parse line {ln!r}")
    num_classes = max(labels.values()) + 1 if labels else 0
    names = class_names or [str(i) for i in range(num_classes)]
    samples = []
    for image_id in ids:
        if image_id not in labels:
            raise ValueError(f"{meta}: image {image_id} has no class label")
        mask_loader = (partial(_load_mask, masks[image_id], ignores.get(image_id))
                       if image_id in masks else None)
        samples.append(Sample(image_id=image_id, label=labels[image_id],
                              boxes=as_boxes(boxes.get(image_id, [])), path=str(data_root / image_id),
                              size=sizes.get(image_id), mask_loader=mask_loader))
    return SampleSet(f"wsoleval:{Path(metadata_root).name}:{split}", samples, names)
