"""Reader for image-level labels as folders, ``ROOT/<split>/<class>/<image>`` (torchvision's ImageFolder
layout, one folder a split): the usual form of a labels-only dataset, which is what WSOL trains on.

There are no boxes, so such a split trains and serves but cannot be scored for localisation nor choose a
CAM threshold; give a boxed split for those (``csv``, ``voc``, ``cub``, ``wsoleval``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..imageio import IMAGE_SUFFIXES
from .samples import Sample, SampleSet


def read_class_folders(root: str | Path, split: str) -> SampleSet:
    """Every image under ``ROOT/split/<class>/`` (recursively, sorted), labelled by its class folder.

    The classes are the folder names found under every split of ROOT, sorted, so a class index means the
    same in each split even when a split lacks a class."""
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(f"{root} has no {split!r} folder (the layout is ROOT/<split>/<class>/<image>; "
                                f"--split names the folder{'; found: ' + ', '.join(found) if found else ''})")
    class_names = sorted({c.name for s in root.iterdir() if s.is_dir() for c in s.iterdir() if c.is_dir()})
    index = {name: i for i, name in enumerate(class_names)}
    samples = []
    for class_dir in sorted(c for c in split_dir.iterdir() if c.is_dir()):
        for path in sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
            samples.append(Sample(image_id=path.relative_to(split_dir).as_posix(), label=index[class_dir.name],
                                  boxes=np.zeros((0, 4)), path=str(path)))
    if not samples:
        raise ValueError(f"{split_dir} holds no images in class folders ({', '.join(IMAGE_SUFFIXES)})")
    return SampleSet(f"folders:{root.name}/{split}", samples, class_names)
