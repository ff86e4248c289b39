"""Frame sources: image file, folder (recursive, sorted), glob, video file, camera index
(``camera:0``), RTSP/HTTP URL, or a GStreamer pipeline string (contains ``!``).

A source yields :class:`Frame` items. A bad file becomes a Frame with ``error`` set (the
pipeline reports and skips it); live sources reconnect with backoff when the stream drops.
"""
from __future__ import annotations

import glob as globlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..imageio import IMAGE_SUFFIXES, ImageReadError, read_image_rgb

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class SourceError(RuntimeError):
    """A source cannot be opened, or a live source stayed disconnected."""


_QUIETED = False  # set by quiet_video_logs(): a capture failure then says how to see the libraries' own reason


class CaptureError(SourceError):
    """OpenCV could not open a capture, or lost one for good: OpenCV's or FFmpeg's own log may say why."""

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}; --verbose shows OpenCV's and FFmpeg's own messages" if _QUIETED else text


def quiet_video_logs() -> None:
    """Hide OpenCV's log and FFmpeg's (through OpenCV) for this process. They print their own lines before this
    package's one-line error ("[ WARN:0@0.3] global cap_v4l.cpp:915 open VIDEOIO(V4L2:/dev/video0): can't open
    camera by index", "[tcp @ 0x55...] Connection refused", "moov atom not found"); the CLI calls this unless
    --verbose. FFmpeg's level is read when OpenCV first opens FFmpeg, so this works before the first capture; an
    OPENCV_FFMPEG_LOGLEVEL or OPENCV_LOG_LEVEL the user set is left as it is."""
    global _QUIETED
    _QUIETED = True
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


@dataclass
class Frame:
    source: str
    index: int
    timestamp: float
    image: np.ndarray | None = None  # BGR uint8
    error: str | None = None
    decode_ms: float = 0.0
    video: bool = False  # a frame of a video, camera or stream (annotated into a video, not an image)
    fps: float = 0.0  # the capture's frame rate, where it says one


def describe(spec: str) -> tuple[str, bool]:
    """(kind, live) for a source spec."""
    if spec.startswith("camera:"):
        return "camera", True
    if "!" in spec:
        return "gstreamer", True
    if spec.split("://")[0].lower() in ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp") and "://" in spec:
        return "stream", True
    p = Path(spec)
    if p.is_dir():
        return "folder", False
    if any(ch in spec for ch in "*?["):
        return "glob", False
    if p.suffix.lower() in VIDEO_SUFFIXES:
        return "video", False
    return "image", False


def _image_frame(path: Path, index: int) -> Frame:
    t0 = time.perf_counter()
    try:
        rgb = read_image_rgb(path)
    except ImageReadError as exc:
        return Frame(str(path), index, time.time(), error=str(exc))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return Frame(str(path), index, time.time(), image=bgr, decode_ms=(time.perf_counter() - t0) * 1e3)


def _files(paths: list[Path], stop=None) -> Iterator[Frame]:
    """Each image as a frame, each video as its frames (``frame.index``: its frame number in that video)."""
    for i, p in enumerate(paths):
        if stop and stop():
            return
        suffix = p.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            cap = _open_capture((str(p),))
            if cap is None:
                yield Frame(str(p), i, time.time(), error=f"{p}: cannot open the video (corrupt or unsupported)")
                continue
            yield from _read_video(str(p), cap, (str(p),), False, 0, stop)
            continue
        if suffix not in IMAGE_SUFFIXES:
            yield Frame(str(p), i, time.time(), error=f"{p}: unsupported file type {p.suffix or '(none)'}")
            continue
        yield _image_frame(p, i)


def _frame_count(path: Path) -> int | None:
    """A video's frame count from its header (None where it says none); 1 for one that cannot be opened,
    whose one error line is its only item."""
    cap = cv2.VideoCapture(str(path))
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 1
    finally:
        cap.release()
    return count if count > 0 else None


def _items(paths: list[Path]) -> int | None:
    """How many frames a list of files holds (each video's frame count), if every count is known."""
    counts = [_frame_count(p) if p.suffix.lower() in VIDEO_SUFFIXES else 1 for p in paths]
    return None if None in counts else sum(counts)


def _open_capture(cap_args: tuple):
    cap = cv2.VideoCapture(*cap_args)
    return cap if cap.isOpened() else None


def _video(spec: str, cap_args: tuple, live: bool, reconnect: int, stop) -> Iterator[Frame]:
    """Opens the capture now (so a bad source fails before any thread starts), reads lazily."""
    cap = _open_capture(cap_args)
    if cap is None:
        if cv2.CAP_GSTREAMER in cap_args and not opencv_has("GStreamer"):
            # the documented Jetson camera command meets this: PyPI's OpenCV wheels have no GStreamer
            raise SourceError(f"{spec}: this OpenCV {cv2.__version__} was built without GStreamer (PyPI's "
                              "opencv-python wheels are): on a Jetson use the OpenCV JetPack installs (pip uninstall "
                              "opencv-python-headless), or read a USB camera as camera:N")
        if not live and Path(spec).is_file():  # a file that is there: what is wrong is in it
            raise CaptureError(f"{spec}: cannot open the video (corrupt or unsupported)")
        raise CaptureError(f"{spec}: cannot open (no such device/file, or OpenCV lacks the backend)")
    return _read_video(spec, cap, cap_args, live, reconnect, stop)


def opencv_has(backend: str) -> bool:
    """Whether this OpenCV build lists ``backend`` (e.g. GStreamer) as YES in its build information."""
    for line in cv2.getBuildInformation().splitlines():
        name, _, value = line.strip().partition(":")
        if name.strip() == backend:
            return value.strip().upper().startswith("YES")
    return False


def _read_video(spec: str, cap, cap_args: tuple, live: bool, reconnect: int, stop) -> Iterator[Frame]:
    expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not live else 0
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)  # once per capture, not per frame
    index = 0
    try:
        while not (stop and stop()):
            t0 = time.perf_counter()
            ok, frame = cap.read()
            if ok and frame is not None:
                yield Frame(spec, index, time.time(), image=frame, decode_ms=(time.perf_counter() - t0) * 1e3,
                            video=True, fps=fps)
                index += 1
                continue
            if not live:
                if expected > 0 and index < expected:
                    print(f"warning: {spec}: video ended after {index} of {expected} frames (truncated?)", file=sys.stderr)
                return
            cap.release()
            cap = None
            for attempt in range(reconnect):  # live stream dropped: back off and reconnect
                delay = min(0.5 * 2 ** attempt, 8.0)
                print(f"warning: {spec}: disconnected, reconnecting in {delay:.1f}s ({attempt + 1}/{reconnect})",
                      file=sys.stderr)
                time.sleep(delay)
                if stop and stop():
                    return
                cap = _open_capture(cap_args)
                if cap is not None:
                    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
                    break
            if cap is None:
                raise CaptureError(f"{spec}: disconnected and did not come back after {reconnect} attempts")
    finally:
        if cap is not None:
            cap.release()


def source_files(spec: str) -> list[Path]:
    """The files a file source reads, sorted (none for a camera or stream, or where nothing matches)."""
    kind, live = describe(spec)
    if live:
        return []
    if kind == "folder":
        return sorted(p for p in Path(spec).rglob("*") if p.is_file() and not p.name.startswith("."))
    if kind == "glob":
        return sorted(Path(p) for p in globlib.glob(spec, recursive=True) if Path(p).is_file())
    return [Path(spec)] if Path(spec).is_file() else []


def open_source(spec: str, *, reconnect: int = 5, stop=None,
                files: list[Path] | None = None) -> tuple[Iterator[Frame], bool, int | None]:
    """(frame iterator, live, number of items if known) for a source spec; raises SourceError
    if it cannot be opened. ``files``: ``source_files(spec)`` where the caller has already listed them."""
    kind, live = describe(spec)
    if kind == "camera":
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError:
            raise SourceError(f"{spec}: camera index must be an integer, e.g. camera:0") from None
        return _video(spec, (index,), True, reconnect, stop), True, None
    if kind == "gstreamer":
        return _video(spec, (spec, cv2.CAP_GSTREAMER), True, reconnect, stop), True, None
    if kind == "stream":
        return _video(spec, (spec,), True, reconnect, stop), True, None
    if kind == "video":
        if not Path(spec).is_file():
            raise SourceError(f"{spec}: video file not found")
        return _video(spec, (spec,), False, 0, stop), False, _frame_count(Path(spec))
    if kind in ("folder", "glob"):
        paths = source_files(spec) if files is None else files
        if not paths:
            raise SourceError(f"{spec}: folder is empty" if kind == "folder" else f"{spec}: no file matches")
        return _files(paths, stop), False, _items(paths)
    if not Path(spec).exists():
        raise SourceError(f"{spec}: no such file, folder, camera or stream")
    return _files([Path(spec)]), False, 1
