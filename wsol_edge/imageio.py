"""Reading images of any common kind into uint8 RGB, with one clear error per bad file.

OpenCV is used (not PIL) because the runtime ships OpenCV anyway and it decodes
16-bit PNG/TIFF, alpha and CMYK JPEG in one call.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image file is missing, empty, corrupt, truncated or of an unsupported layout."""


def _is_truncated_jpeg(data: bytes) -> bool:
    # libjpeg pads a truncated stream with grey and only warns; the end-of-image
    # marker (FFD9) missing near the end is the reliable sign of truncation.
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]


def float_to_uint8(image: np.ndarray, source: str) -> np.ndarray:
    """A float image in [0, 1] (OpenCV's convention for float images, and float TIFF's) -> uint8, rounded.
    Anything else is refused rather than guessed at: guessing 0-255 from the values would read a dark
    frame of a 0-255 stream (every value <= 1) as [0, 1] and turn it near white."""
    if not np.isfinite(image).all():
        raise ImageReadError(f"{source}: image contains NaN or infinite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
        raise ImageReadError(f"{source}: float image with values in [{lo:g}, {hi:g}]; float images are read as "
                             "[0, 1]: scale it (x / 255 for 0-255 values) or pass uint8")
    return np.rint(image.astype(np.float32) * 255.0).astype(np.uint8)


def to_rgb_uint8(image: np.ndarray, *, source: str = "array", bgr: bool = True) -> np.ndarray:
    """Convert a decoded image (gray, gray+alpha, BGR, BGRA; uint8/uint16/float) to RGB uint8."""
    if not isinstance(image, np.ndarray):
        raise ImageReadError(f"{source}: expected a numpy array, got {type(image).__name__}")
    if image.size == 0 or image.ndim not in (2, 3):
        raise ImageReadError(f"{source}: unsupported image shape {image.shape}")
    if image.dtype == np.uint16:
        peak = int(image.max())
        if 0 < peak < 4096:  # warned once per call site (Python's default), not per frame
            warnings.warn(f"{source}: 16-bit image whose brightest value is {peak}: read as full 16-bit range "
                          "(the top 8 bits), it comes out dark; if it holds 10- or 12-bit camera data, scale it to "
                          "16 bits first (x << 4 for 12-bit)", stacklevel=2)
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float16, np.float32, np.float64):
        image = float_to_uint8(image, source)
    elif image.dtype != np.uint8:
        raise ImageReadError(f"{source}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:  # gray + alpha: drop alpha
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(image)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    hint = (f" (a {image.shape[0]}xHxW array? images are HxWxC, channels last: transpose it with "
            "image.transpose(1, 2, 0))" if image.shape[0] in (1, 3, 4) else "")
    raise ImageReadError(f"{source}: unsupported channel count {channels}{hint}")


def decode_image(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to RGB uint8 (H, W, 3)."""
    if len(data) == 0:
        raise ImageReadError(f"{source}: file is empty (0 bytes)")
    if _is_truncated_jpeg(data):
        raise ImageReadError(f"{source}: truncated JPEG (no end-of-image marker)")
    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{source}: not a decodable image (corrupt or unsupported format)")
    return to_rgb_uint8(image, source=source)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); raises ImageReadError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_image(data, source=str(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file, decoding it (robust for every format cv2 reads)."""
    h, w = read_image_rgb(path).shape[:2]
    return w, h
