"""Where results go: JSONL lines, annotated images or video, a window."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..atomic import UnwritableError, writable_folder
from .localizer import Localization


class OutputError(RuntimeError):
    """An output location cannot be written."""


def check_writable(folder: str | Path) -> Path:
    try:
        return writable_folder(folder)
    except UnwritableError as exc:
        raise OutputError(str(exc)) from None


def annotate(frame_bgr: np.ndarray, loc: Localization, cam_overlay: bool = False) -> np.ndarray:
    out = frame_bgr.copy()
    h, w = out.shape[:2]
    if cam_overlay:
        heat = cv2.applyColorMap((cv2.resize(loc.scoremap, (w, h)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
        out = cv2.addWeighted(heat, 0.4, out, 0.6, 0)
    x0, y0, x1, y1 = (int(round(v)) for v in loc.box)
    thick = max(1, round(min(h, w) / 250))
    cv2.rectangle(out, (x0, y0), (x1, y1), (0, 0, 255), thick)
    label = f"{loc.class_name} {loc.score:.2f}"
    scale = max(0.4, min(h, w) / 700)
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = max(y0, th + 4)
    cv2.rectangle(out, (x0, ty - th - 4), (x0 + tw + 4, ty), (0, 0, 255), -1)
    cv2.putText(out, label, (x0 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class JsonlSink:
    """One JSON object per line, flushed per line so an interrupted run keeps every finished frame."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        check_writable(self.path.parent)  # "r.jsonl"'s parent is "."
        self.f = open(self.path, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        try:
            self.f.write(json.dumps(record) + "\n")
            self.f.flush()
        except OSError as exc:  # a full disk mid-run: the run ends in one line, every line before it kept
            raise OutputError(f"cannot write {self.path} ({exc.strerror or exc}); the lines before are kept") from None

    def close(self) -> None:
        try:
            self.f.close()
        except OSError:  # the flush of a line that failed, already reported by write
            pass


class AnnotatedSink:
    """Annotated images (same file names) for image sources; one .mp4 per video/live source, at its rate."""

    def __init__(self, folder: str | Path, cam_overlay: bool = False, fps: float = 25.0, inputs=()):
        # the annotated files take their sources' names: in the folder that holds the sources they would
        # replace them (a rerun into an output folder replaces only what an earlier run wrote there)
        here = Path(folder).resolve()
        beside = [f for f in inputs if Path(f).resolve().parent == here]
        if beside:
            raise OutputError(f"output folder {folder} holds the source's own files ({Path(beside[0]).name}"
                              f"{f' and {len(beside) - 1} more' if len(beside) > 1 else ''}): the annotated copies "
                              "would replace them; give another --output folder")
        self.folder = check_writable(folder)
        self.cam_overlay, self.fps = cam_overlay, fps
        self.writers: dict[str, cv2.VideoWriter] = {}
        self.sizes: dict[str, tuple[int, int]] = {}
        self.videos: dict[str, tuple[Path, int]] = {}  # per source: its annotated file, frames written to it
        self.names: set[str] = set()

    def _output_name(self, stem: str, ending: str) -> Path:
        name, k = stem + ending, 1
        while name in self.names:  # same file name in two sub-folders: keep both
            name = f"{stem}_{k}{ending}"
            k += 1
        self.names.add(name)
        return self.folder / name

    def write(self, frame, loc: Localization) -> None:
        img = annotate(frame.image, loc, self.cam_overlay)
        if not frame.video:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                raise OutputError(f"cannot encode the annotated {frame.source}")
            target = self._output_name(Path(frame.source).stem, ".jpg")
            tmp = target.with_name("." + target.name + ".tmp")
            try:  # no fsync per frame, unlike atomic_write: a stream writes many and loses at most the last
                tmp.write_bytes(buf.tobytes())
                os.replace(tmp, target)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise OutputError(f"cannot write {target} ({exc.strerror or exc})") from None
            return
        writer = self.writers.get(frame.source)
        if writer is None:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(frame.source).stem or frame.source)
            path = self._output_name(safe, "_annotated.mp4")
            h, w = img.shape[:2]
            # at the source's rate, so the annotated video plays as long as the one it annotates
            fps = frame.fps if 0 < frame.fps <= 240 else self.fps
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if not writer.isOpened():
                raise OutputError(f"cannot open video writer {path}")
            self.writers[frame.source] = writer
            self.sizes[frame.source] = (w, h)
            self.videos[frame.source] = (path, 0)
        size = self.sizes[frame.source]
        if img.shape[1::-1] != size:  # a stream that changed resolution: VideoWriter would drop the frame silently
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        writer.write(img)
        path, written = self.videos[frame.source]
        self.videos[frame.source] = (path, written + 1)

    def close(self) -> None:
        """Finish each video, and read it back: VideoWriter reports no write error, and a disk that filled up
        leaves an .mp4 without its index (unreadable) or short of frames, which is said here in one line. A
        backend that does not know the count (-1 or 0) is taken at its word: nothing is said."""
        short = []
        for source, writer in self.writers.items():
            writer.release()
            path, written = self.videos[source]
            cap = cv2.VideoCapture(str(path))
            held = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else None
            cap.release()
            if held is None:
                short.append(f"{path} cannot be read back ({written} frames were written to it)")
            elif 0 < held < written:
                short.append(f"{path} holds {held} of the {written} frames written")
        self.writers.clear()
        if short:
            more = f" (and {len(short) - 1} more video(s))" if len(short) > 1 else ""
            raise OutputError(f"annotated video incomplete: {short[0]}{more}; the video writer reported no error "
                              "(a full disk?)")


class WindowSink:
    """Annotated frames in a window; q or Esc quits. The window opens at start-up, so an OpenCV without a
    GUI (opencv-python-headless, the one the base install pulls) or a machine without a display is one
    line before any frame is read, not a traceback at the first frame."""

    NAME = "wsol_edge"

    def __init__(self, cam_overlay: bool = False):
        self.cam_overlay = cam_overlay
        try:
            cv2.namedWindow(self.NAME, cv2.WINDOW_AUTOSIZE)
        except cv2.error as exc:
            raise OutputError(f"--show: {window_failure(exc)}") from None

    def write(self, frame, loc: Localization) -> bool:
        try:
            cv2.imshow(self.NAME, annotate(frame.image, loc, self.cam_overlay))
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        except cv2.error as exc:
            raise OutputError(f"--show: {window_failure(exc)}") from None

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.NAME)
        except cv2.error:  # the window went with the display, or never opened: nothing left to close
            pass


def window_failure(exc: cv2.error) -> str:
    """Why OpenCV could not show a window, in a line: its own message runs to build instructions."""
    text = str(exc)
    if "not implemented" in text:  # what a build without any GUI backend says to every window call
        return ("this OpenCV has no GUI (opencv-python-headless, as the base install has); install opencv-python "
                "in its place to show frames, or write them with --output / --jsonl")
    # "OpenCV(4.10.0) window_gtk.cpp:635: error: (-2:Unspecified error) WHY in function 'cvInitSystem'"
    found = re.search(r"error: \([^)]*\) (.*?)(?: in function '[^']*')?\s*$", text, re.S)
    why = " ".join((found.group(1) if found else text).split())
    return f"OpenCV cannot show a window here (no display?): {why[:200]}"
