"""torch Datasets over a SampleSet: the train and eval transforms of the protocol."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..imageio import ImageReadError
from ..preprocess import normalize, resize
from .samples import SampleSet


class TrainDataset(Dataset):
    """Resize to (resize x resize), random crop (crop x crop), random horizontal flip.

    Randomness comes from (seed, epoch, index), so an epoch is identical however many workers
    load it, and a resumed run sees the same augmentations. With ``skip_bad`` an unreadable image
    yields None (dropped by ``collate_skip_bad``) instead of stopping training.
    """

    def __init__(self, samples: SampleSet, mean, std, resize_to: int = 256, crop: int = 224,
                 seed: int = 0, skip_bad: bool = False):
        self.samples, self.mean, self.std = samples, mean, std
        self.resize_to, self.crop, self.seed, self.skip_bad = resize_to, crop, seed, skip_bad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        try:
            img = s.load()
        except ImageReadError:
            if self.skip_bad:
                return None
            raise
        rng = np.random.default_rng([self.seed, self.epoch, i])
        img = resize(img, self.resize_to, self.resize_to)
        y = int(rng.integers(0, self.resize_to - self.crop + 1))
        x = int(rng.integers(0, self.resize_to - self.crop + 1))
        img = img[y:y + self.crop, x:x + self.crop]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        return torch.from_numpy(normalize(img, self.mean, self.std)), s.label


class EvalDataset(Dataset):
    """Plain resize to (size x size), GT boxes mapped with int(x * size / W) (protocol rule 1)."""

    def __init__(self, samples: SampleSet, mean, std, size: int = 224, skip_bad: bool = False):
        self.samples, self.mean, self.std, self.size, self.skip_bad = samples, mean, std, size, skip_bad

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from ..evaluation import eval_sample

        try:
            image, label, boxes, mask = eval_sample(self.samples[i], self.size, self.mean, self.std)
        except ImageReadError:
            if self.skip_bad:
                return None
            raise
        return {"image": torch.from_numpy(image), "label": label, "boxes": boxes, "index": i, "mask": mask}


def collate_skip_bad(batch):
    """Default collation after dropping samples that failed to load (None)."""
    good = [b for b in batch if b is not None]
    skipped = len(batch) - len(good)
    if not good:
        return None, skipped
    if isinstance(good[0], dict):
        out = {"image": torch.stack([g["image"] for g in good]),
               "label": torch.tensor([g["label"] for g in good]),
               "index": torch.tensor([g["index"] for g in good]),
               "boxes": [g["boxes"] for g in good], "mask": [g["mask"] for g in good]}
        return out, skipped
    return (torch.stack([g[0] for g in good]), torch.tensor([g[1] for g in good])), skipped
