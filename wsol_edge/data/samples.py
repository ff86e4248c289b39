"""The one record every reader produces: an image reference, its label and all its GT boxes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..imageio import read_image_rgb


@dataclass
class Sample:
    """One image. ``boxes`` are x0,y0,x1,y1 in original-image pixels (float), all GT boxes kept."""

    image_id: str
    label: int
    boxes: np.ndarray
    path: str | None = None
    size: tuple[int, int] | None = None  # (width, height) if known without decoding
    loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    mask_loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    def load(self) -> np.ndarray:
        """RGB uint8 HxWx3; raises ImageReadError naming the file."""
        if self.loader is not None:
            return self.loader()
        if self.path is None:
            raise ValueError(f"sample {self.image_id} has neither a path nor a loader")
        return read_image_rgb(self.path)

    def load_mask(self) -> np.ndarray | None:
        """Foreground mask (H, W) in {0: background, 1: foreground, 255: ignore}, or None."""
        return None if self.mask_loader is None else self.mask_loader()


@dataclass
class SampleSet:
    """An ordered list of samples plus the class names their labels index."""

    name: str
    samples: list[Sample]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: Sequence[int]) -> "SampleSet":
        return SampleSet(self.name, [self.samples[i] for i in indices], self.class_names)


def require_boxes(samples: SampleSet) -> SampleSet:
    """A split to score localisation on: refused in one line, before any image is read, when it has no boxes."""
    if not any(len(s.boxes) for s in samples):
        raise ValueError(f"{samples.name} has no boxes, so localisation cannot be scored on it: use a boxed split "
                         "(--dataset cub, wsoleval, voc, or csv with boxes)")
    return samples


def check_classes(samples: SampleSet, class_names: Sequence[str] | None, model: str = "the model") -> SampleSet:
    """A split whose labels index the model's classes, refused in one line before any image is read when
    they do not: another class count, or other names at an index (a CSV, folders or VOC split with a class
    of its own, or the same classes in another order), would score each image against another class's map,
    or resume training each label as another class, without a word. Numbered classes (wsoleval metadata:
    "0", "1", ...) name nothing to compare."""
    if class_names is None:
        return samples
    ours, theirs = list(class_names), list(samples.class_names)
    if len(ours) != len(theirs):
        raise ValueError(f"{model} has {len(ours)} classes but {samples.name} has {len(theirs)}")
    numbered = [str(i) for i in range(len(ours))]
    if ours == theirs or numbered in (ours, theirs):
        return samples
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    i = differ[0]
    order = " (the same classes in another order)" if sorted(ours) == sorted(theirs) else ""
    raise ValueError(f"{model}'s class {i} is {ours[i]!r} but {samples.name}'s is {theirs[i]!r}{order}; "
                     f"{len(differ)} of {len(ours)} classes differ, so its labels would stand for other classes")


def as_boxes(rows: Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    bad = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if bad.any():
        raise ValueError(f"box with x1<x0 or y1<y0: {arr[bad][0].tolist()}")
    return arr
