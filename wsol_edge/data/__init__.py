"""Datasets: readers for CUB, wsolevaluation metadata, VOC XML, CSV boxes, class folders (labels only),
and synthetic data.

All readers return a :class:`SampleSet`; ``open_dataset`` picks one from a short spec.
"""
from __future__ import annotations

from pathlib import Path

from .class_folders import read_class_folders
from .csv_boxes import read_csv_boxes
from .cub import read_cub
from .samples import Sample, SampleSet, check_classes, require_boxes
from .synthetic import synthetic_dataset
from .voc import read_voc
from .wsoleval import read_wsoleval

DATASET_KINDS = ("cub", "wsoleval", "voc", "csv", "folders", "synthetic")


def open_dataset(kind: str, root: str | None, split: str, *, metadata_root: str | None = None,
                 synthetic_images: int = 64, synthetic_classes: int = 4, synthetic_size: int = 96,
                 seed: int = 0, class_names: list[str] | None = None) -> SampleSet:
    """Open a dataset by kind: ``cub`` (official layout), ``wsoleval`` (metadata + data root),
    ``voc`` (images + XML in one folder), ``csv`` (path to a labels CSV; ``split.csv`` beside it is
    used when present), ``folders`` (``ROOT/<split>/<class>/<image>``, labels only), ``synthetic``
    (procedural, no files). ``class_names`` (a model's) index the labels of the kinds that name their classes
    by the objects they hold (voc, csv), so that a split without one of the classes still lines up with the
    model: without them, its own sorted names would have one class fewer."""
    if kind == "synthetic":
        return synthetic_dataset(synthetic_images, synthetic_classes, synthetic_size, seed, split)
    if root is None:
        raise ValueError(f"dataset kind {kind!r} needs --data-root")
    if not Path(root).exists():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    if kind == "cub":
        return read_cub(root, split)
    if kind == "wsoleval":
        if metadata_root is None:
            raise ValueError("dataset kind 'wsoleval' needs --metadata-root")
        return read_wsoleval(metadata_root, root, split)
    if kind == "voc":
        return read_voc(root, class_names=class_names)
    if kind == "csv":
        csv_path = Path(root)
        if csv_path.is_dir():  # else open() fails with IsADirectoryError, which no CLI reports in one line
            found = sorted(p.name for p in csv_path.glob("*.csv") if p.name != "split.csv")
            pick = "labels.csv" if "labels.csv" in found else (found[0] if found else None)
            hint = f": give the labels file itself, e.g. {csv_path / pick}" if pick else " and holds no labels CSV"
            raise ValueError(f"dataset kind 'csv' takes the labels CSV file, not a folder; {root} is a folder{hint}")
        split_csv = csv_path.parent / "split.csv"
        return read_csv_boxes(csv_path, split_csv=split_csv if split_csv.is_file() else None,
                              split=split if split_csv.is_file() else None, class_names=class_names)
    if kind == "folders":
        return read_class_folders(root, split)
    raise ValueError(f"unknown dataset kind {kind!r}; choose from {', '.join(DATASET_KINDS)}")


__all__ = ["Sample", "SampleSet", "open_dataset", "require_boxes", "check_classes", "read_cub", "read_wsoleval",
           "read_voc", "read_csv_boxes", "read_class_folders", "synthetic_dataset", "DATASET_KINDS"]
