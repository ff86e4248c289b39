"""Capture -> preprocess -> infer -> postprocess -> sink, each stage in its own thread with bounded
queues. Live sources drop the oldest waiting frame instead of letting latency grow; files never
drop. Ctrl-C stops capture and lets every frame already read reach the sinks."""
from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .localizer import Localizer
from .sources import SourceError

_END = object()


@dataclass
class Stats:
    frames: int = 0
    errors: int = 0
    dropped: int = 0
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in
                                                                      ("decode", "preprocess", "inference", "postprocess")})
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> str:
        elapsed = time.perf_counter() - self.started
        med = {k: float(np.median(v)) if v else 0.0 for k, v in self.stage_ms.items()}
        parts = " ".join(f"{k}={v:.2f}ms" for k, v in med.items())
        return (f"{self.frames} frame(s) in {elapsed:.2f}s ({self.frames / max(elapsed, 1e-9):.1f} FPS), "
                f"{self.errors} error(s), {self.dropped} dropped; median per frame: {parts}")


class Pipeline:
    def __init__(self, localizer: Localizer, frames, *, live: bool, batch: int = 1, drop_frames: bool = True,
                 max_frames: int | None = None, fps: float | None = None, queue_size: int | None = None):
        self.loc, self.frames, self.live = localizer, frames, live
        self.batch, self.drop = max(1, batch), live and drop_frames
        self.max_frames, self.fps = max_frames, fps
        size = queue_size or 2 * self.batch
        self.q_frames: queue.Queue = queue.Queue(maxsize=size)
        self.q_batches: queue.Queue = queue.Queue(maxsize=2)
        self.q_outputs: queue.Queue = queue.Queue(maxsize=2)
        self.q_results: queue.Queue = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.consumer_gone = threading.Event()  # run() left early (a sink raised): nobody drains the queues
        self.stats = Stats()
        self.fatal: str | None = None

    # --- stages -------------------------------------------------------------------------------
    def _put(self, q: queue.Queue, item) -> None:
        # blocks while run() drains the queues, even after a fatal error, so every frame read reaches a sink
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.consumer_gone.is_set():
                    return

    def _get(self, q: queue.Queue, wait: float | None = None):
        """The next item; _END once run() has left early. ``wait``: give up after it (queue.Empty)."""
        deadline = None if wait is None else time.perf_counter() + wait
        while not self.consumer_gone.is_set():
            left = 0.1 if deadline is None else min(0.1, deadline - time.perf_counter())
            if left <= 0:
                raise queue.Empty
            try:
                return q.get(timeout=left)
            except queue.Empty:
                continue
        return _END

    def _fail(self, frames, stage: str, exc: Exception) -> None:
        """A stage failed on a batch: each of its frames gets an error line (none vanishes), then the run
        stops as Ctrl-C does, the frames already read still reaching the sinks."""
        why = f"{stage} failed: {type(exc).__name__}: {exc}"
        for f in frames:
            f.error = f"{f.source}: {why}"
            self._put(self.q_results, ([f], None))
        self.fatal = self.fatal or why
        self.stop.set()

    def _capture(self) -> None:
        count, next_time = 0, time.perf_counter()
        frames = iter(self.frames)
        try:
            # asked before the next frame is read, so no frame is read only to be thrown away
            while not (self.stop.is_set() or (self.max_frames and count >= self.max_frames)):
                frame = next(frames, None)
                if frame is None:
                    break
                if self.fps:
                    now = time.perf_counter()
                    if now < next_time:
                        time.sleep(next_time - now)
                    next_time = max(now, next_time) + 1.0 / self.fps
                count += 1
                if self.drop:
                    while True:
                        try:
                            self.q_frames.put_nowait(frame)
                            break
                        except queue.Full:
                            try:
                                self.q_frames.get_nowait()  # the stalest frame goes
                                self.stats.dropped += 1
                            except queue.Empty:
                                pass
                else:
                    self._put(self.q_frames, frame)
        except SourceError as exc:
            self.fatal = str(exc)
        except Exception as exc:  # a broken decoder must not hang the other threads
            self.fatal = f"capture failed: {type(exc).__name__}: {exc}"
        finally:
            self._put(self.q_frames, _END)

    def _preprocess(self) -> None:
        ended = False
        while not ended:
            item = self._get(self.q_frames)
            if item is _END:
                break
            group = [item]
            while len(group) < self.batch:
                try:
                    nxt = self._get(self.q_frames, None if not self.live else 0.005)
                except queue.Empty:
                    break
                if nxt is _END:
                    ended = True
                    break
                group.append(nxt)
            t0 = time.perf_counter()
            good, tensors = [], []
            for f in group:
                if f.error is None:
                    try:
                        tensors.append(self.loc.preprocess(f.image))
                        good.append(f)
                        continue
                    except Exception as exc:
                        f.error = f"{f.source}: {exc}"
                self._put(self.q_results, ([f], None))  # errors go straight to the sink, in order enough
            if good:
                ms = (time.perf_counter() - t0) * 1e3 / len(good)
                self._put(self.q_batches, (good, np.stack(tensors), ms))
        self._put(self.q_batches, _END)

    def _infer(self) -> None:
        while True:
            item = self._get(self.q_batches)
            if item is _END:
                break
            frames, x, pre_ms = item
            t0 = time.perf_counter()
            try:
                out = self.loc.infer(x)
            except Exception as exc:
                self._fail(frames, "inference", exc)
                continue
            self._put(self.q_outputs, (frames, out, pre_ms, (time.perf_counter() - t0) * 1e3 / len(frames)))
        self._put(self.q_outputs, _END)

    def _postprocess(self) -> None:
        while True:
            item = self._get(self.q_outputs)
            if item is _END:
                break
            frames, out, pre_ms, inf_ms = item
            t0 = time.perf_counter()
            try:
                results = self.loc.postprocess(out, [(f.image.shape[1], f.image.shape[0]) for f in frames])
            except Exception as exc:  # an uncaught one here ended the thread and left run() waiting for ever
                self._fail(frames, "postprocessing", exc)
                continue
            post_ms = (time.perf_counter() - t0) * 1e3 / len(frames)
            for f, r in zip(frames, results):
                r.latency_ms = {"decode": f.decode_ms, "preprocess": pre_ms, "inference": inf_ms, "postprocess": post_ms}
            self._put(self.q_results, (frames, results))
        self._put(self.q_results, _END)

    # --- driver -------------------------------------------------------------------------------
    def _deliver(self, item, on_result, on_error) -> None:
        frames, results = item
        for i, f in enumerate(frames):
            if results is None:
                self.stats.errors += 1
                on_error(f)
                continue
            r = results[i]
            self.stats.frames += 1
            for k, v in r.latency_ms.items():
                self.stats.stage_ms[k].append(v)
            if on_result(f, r) is False:
                self.stop.set()

    def run(self, on_result, on_error):
        """Call ``on_result(frame, localization)`` / ``on_error(frame)`` from this thread for every
        frame; returns Stats. KeyboardInterrupt stops capture and drains what was read."""
        threads = [threading.Thread(target=t, daemon=True, name=t.__name__) for t in
                   (self._capture, self._preprocess, self._infer, self._postprocess)]
        for t in threads:
            t.start()
        try:
            while True:
                try:
                    item = self.q_results.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    break
                self._deliver(item, on_result, on_error)
        except KeyboardInterrupt:
            print("interrupted: finishing the frames already read", file=sys.stderr)
            self.stop.set()
            while (item := self.q_results.get()) is not _END:
                self._deliver(item, on_result, on_error)
        except BaseException:
            self.stop.set()
            self.consumer_gone.set()  # the stage threads stop waiting on queues no one reads
            raise
        for t in threads:
            t.join(timeout=5)
        return self.stats
