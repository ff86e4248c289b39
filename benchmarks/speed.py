"""Latency and throughput per stage (decode, preprocess, inference, postprocess), per backend,
precision and batch size, on real image files.

Every record of one invocation shares a ``run_id``: ratios between backends are only meaningful
inside one run, on one machine, measured back to back (these machines are shared and noisy).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsol_edge.imageio import decode_image
from wsol_edge.postprocess import cams_to_boxes
from wsol_edge.preprocess import eval_input

STAGES = ("decode", "preprocess", "inference", "postprocess")


@dataclass
class SpeedResult:
    backend: str
    precision: str
    device: str
    batch: int
    images_per_s: float
    latency_ms: dict
    stages_ms: dict
    repeats: int


def percentiles(values_ms: list[float]) -> dict:
    a = np.asarray(values_ms)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean())}


def measure(backend, files: list[Path], batch: int, *, warmup: int = 5, repeats: int = 50,
            threshold: float | None = None) -> SpeedResult:
    """Run the whole per-frame path on ``batch`` images at a time, ``repeats`` times after
    ``warmup``; stage times are per batch divided by the batch size (per image)."""
    meta = backend.meta
    size, mean, std = int(meta["input_size"]), meta["mean"], meta["std"]
    tau = float(threshold if threshold is not None else meta.get("cam_threshold") or 0.5)
    blobs = [Path(f).read_bytes() for f in files]
    if len(blobs) < batch:
        blobs = (blobs * (batch // len(blobs) + 1))[:batch]
    stage_samples = {k: [] for k in STAGES}
    e2e = []
    k = 0
    for it in range(warmup + repeats):
        chunk = [blobs[(k + j) % len(blobs)] for j in range(batch)]
        k += batch
        t0 = time.perf_counter()
        images = [decode_image(b) for b in chunk]
        t1 = time.perf_counter()
        x = np.stack([eval_input(im, size, mean, std) for im in images])
        t2 = time.perf_counter()
        out = backend.infer(x)
        t3 = time.perf_counter()
        cams_to_boxes(out["cams"], tau, size)
        t4 = time.perf_counter()
        if it < warmup:
            continue
        for name, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stage_samples[name].append(dt * 1e3)
        e2e.append((t4 - t0) * 1e3)
    lat = percentiles(e2e)
    return SpeedResult(backend.name, backend.precision, backend.device, batch,
                       images_per_s=batch * 1e3 / lat["median"], latency_ms=lat,
                       stages_ms={k: float(np.median(v)) / batch for k, v in stage_samples.items()}, repeats=repeats)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
