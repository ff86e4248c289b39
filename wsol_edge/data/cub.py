"""Reader for the official CUB-200-2011 layout (images.txt, bounding_boxes.txt, ...; 1-based ids)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .samples import Sample, SampleSet, as_boxes

_REQUIRED = ("images.txt", "image_class_labels.txt", "classes.txt", "train_test_split.txt", "bounding_boxes.txt")


def _table(path: Path) -> list[list[str]]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            rows.append(line.split())
    return rows


def read_cub(root: str | Path, split: str = "test") -> SampleSet:
    """Samples of one split ("train" or "test") of a CUB-200-2011 folder.

    Labels are re-indexed 0..K-1 in the order of classes.txt, so a subset such as cub50 works.
    Boxes come from bounding_boxes.txt (x y w h) as x0=x, y0=y, x1=x+w, y1=y+h, the same
    conversion as wsolevaluation's CUB metadata.
    """
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"CUB split must be 'train' or 'test', got {split!r}")
    missing = [f for f in _REQUIRED if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: not a CUB-200-2011 folder (missing {', '.join(missing)})")
    paths = {r[0]: r[1] for r in _table(root / "images.txt")}
    labels = {r[0]: int(r[1]) for r in _table(root / "image_class_labels.txt")}
    is_train = {r[0]: r[1] == "1" for r in _table(root / "train_test_split.txt")}
    class_rows = _table(root / "classes.txt")
    class_index = {int(r[0]): i for i, r in enumerate(class_rows)}
    class_names = [r[1] for r in class_rows]
    boxes = defaultdict(list)
    for r in _table(root / "bounding_boxes.txt"):
        x, y, w, h = map(float, r[1:5])
        boxes[r[0]].append((x, y, x + w, y + h))
    want_train = split == "train"
    samples = []
    for image_id, rel in paths.items():
        if is_train.get(image_id) != want_train:
            continue
        samples.append(Sample(image_id=image_id, label=class_index[labels[image_id]],
                              boxes=as_boxes(boxes[image_id]), path=str(root / "images" / rel)))
    return SampleSet(f"cub:{root.name}:{split}", samples, class_names)
