"""Calibration images for INT8: a real image folder, preprocessed exactly as at inference."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from wsol_edge.imageio import IMAGE_SUFFIXES, ImageReadError, read_image_rgb
from wsol_edge.preprocess import eval_input

DEFAULT_CALIBRATION_IMAGES = 512


def list_images(folder: str | Path, what: str = "calibration folder") -> list[Path]:
    """The image files under ``folder``, sorted; ``what`` names the folder in the errors (the timing and
    soak benchmarks read image folders too)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{what} {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def pick_images(source, count: int = DEFAULT_CALIBRATION_IMAGES, seed: int = 0, *, for_int8: bool = True) -> list[Path]:
    """``count`` images of a folder or a list of files (a seeded sample, sorted); warns when fewer
    exist and they are meant for INT8 calibration (``for_int8``; the speed harness just cycles them)."""
    files = ([Path(f) for f in source] if isinstance(source, (list, tuple))
             else list_images(source, "calibration folder" if for_int8 else "image folder"))
    if not files:
        raise FileNotFoundError("no calibration images given" if for_int8 else "no images given")
    if len(files) < count:
        if not for_int8:
            return files
        print(f"warning: only {len(files)} calibration images (asked for {count}); "
              f"INT8 ranges from few images can cost accuracy", file=sys.stderr)
        return files
    idx = np.sort(np.random.default_rng(seed).choice(len(files), count, replace=False))
    return [files[i] for i in idx]


def images_digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}\n".encode())
    return h.hexdigest()


def calibration_stride(count: int, largest: int = 16) -> int:
    """Images per calibration chunk: the largest divisor of ``count`` up to ``largest``.

    ONNX Runtime keeps every intermediate activation of every image it calibrates on until the
    chunk ends; 512 EfficientNet-Lite0 images at once took over 24 GiB (killed), 16 take ~1 GiB.
    """
    return max(d for d in range(1, min(largest, count) + 1) if count % d == 0)


class ImageFolderReader:
    """onnxruntime.quantization.CalibrationDataReader over image files (one batch of 1 at a time).
    Unreadable images are skipped with a warning (calibration should not die on one bad file)."""

    def __init__(self, files: list[Path], size: int, mean, std, input_name: str = "images"):
        self.files, self.size, self.mean, self.std, self.input_name = files, size, mean, std, input_name
        self._it = iter(self.files)

    def get_next(self):
        for f in self._it:
            try:
                img = read_image_rgb(f)
            except ImageReadError as exc:
                print(f"warning: calibration image skipped: {exc}", file=sys.stderr)
                continue
            return {self.input_name: eval_input(img, self.size, self.mean, self.std)[None]}
        return None

    def rewind(self):
        self._it = iter(self.files)

    def set_range(self, start_index: int, end_index: int):
        """ORT's strided calibration (CalibStridedMinMax) reads the set in chunks through this."""
        self._it = iter(self.files[start_index:end_index])

    def __len__(self):
        return len(self.files)
