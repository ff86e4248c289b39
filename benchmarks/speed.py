"""Latency and throughput per stage (decode, preprocess, inference, postprocess), per backend,
precision and batch size, on real image files.

Every record of one invocation shares a ``run_id``: ratios between backends are only meaningful
inside one run, on one machine (these machines are shared and noisy). With ``--rounds R`` every
backend x batch is measured R times, the rounds interleaved in time, and the samples pooled; the
per-round images/s and ratios show how much the machine moved during the run.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from wsol_edge.imageio import decode_image
from wsol_edge.postprocess import cams_to_boxes
from wsol_edge.preprocess import eval_input

# Every stage a record can hold, in pipeline order; only GPU rows of a backend with infer_staged
# (PyTorch) have h2d and d2h, split off their inference.
STAGES = ("decode", "preprocess", "h2d", "inference", "d2h", "postprocess")


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


@dataclass
class Samples:
    """Raw per-batch timings (ms) of one backend at one batch size, pooled over rounds."""
    batch: int
    e2e: list[float]
    stages: dict[str, list[float]]
    round_images_per_s: list[float]


def new_samples(batch: int) -> Samples:
    return Samples(batch, [], {}, [])


def checked_bytes(path: Path) -> bytes:
    """An image file's bytes, once decoded here so that the timed loop never meets one it cannot decode."""
    data = Path(path).read_bytes()
    decode_image(data, source=str(path))
    return data


def sample(backend, blobs: list[bytes], samples: Samples, *, warmup: int, repeats: int,
           threshold: float | None = None) -> None:
    """Time the whole per-frame path ``repeats`` times after ``warmup`` on ``samples.batch``
    images at a time and append to ``samples`` (one round)."""
    meta, batch = backend.meta, samples.batch
    size, mean, std = int(meta["input_size"]), meta["mean"], meta["std"]
    tau = float(threshold if threshold is not None else meta.get("cam_threshold") or 0.5)
    if len(blobs) < batch:
        blobs = (blobs * (batch // len(blobs) + 1))[:batch]
    e2e = []
    k = 0
    staged = getattr(backend, "infer_staged", None) if str(backend.device).startswith("cuda") else None
    for it in range(warmup + repeats):
        chunk = [blobs[(k + j) % len(blobs)] for j in range(batch)]
        k += batch
        t0 = time.perf_counter()
        images = [decode_image(b) for b in chunk]
        t1 = time.perf_counter()
        x = np.stack([eval_input(im, size, mean, std) for im in images])
        t2 = time.perf_counter()
        if staged:
            out, parts = staged(x)
        else:
            out, parts = backend.infer(x), None
        t3 = time.perf_counter()
        cams_to_boxes(out["cams"], tau, size, meta.get("ivr_percentile"))  # the maps the model serves
        t4 = time.perf_counter()
        if it < warmup:
            continue
        times = {"decode": t1 - t0, "preprocess": t2 - t1, "inference": t3 - t2, "postprocess": t4 - t3}
        if parts:
            times.update(parts)
        for name, dt in times.items():
            samples.stages.setdefault(name, []).append(dt * 1e3)
        e2e.append((t4 - t0) * 1e3)
    samples.e2e += e2e
    samples.round_images_per_s.append(batch * 1e3 / float(np.median(e2e)))


def summarize(backend, samples: Samples) -> SpeedResult:
    """Medians and percentiles of the pooled samples; stage times per image."""
    lat = percentiles(samples.e2e)
    return SpeedResult(backend.name, backend.precision, backend.device, samples.batch,
                       images_per_s=samples.batch * 1e3 / lat["median"], latency_ms=lat,
                       stages_ms={k: float(np.median(samples.stages[k])) / samples.batch
                                  for k in STAGES if k in samples.stages},
                       repeats=len(samples.e2e))


def ratios_to_reference(records: list[dict], reference=("pytorch", "fp32", "cpu")) -> list[dict]:
    """images/s of each record over the reference backend's at the same batch, overall and per
    round (rounds interleave the backends in time, so a slow spell of the shared machine hits the
    numerator and denominator of a round's ratio alike). The reference is (backend, precision,
    device): PyTorch eager FP32 on the CPU unless told otherwise."""
    refs = {r["batch"]: r for r in records
            if (r["backend"], r["precision"], r.get("device", "cpu")) == tuple(reference)}
    out = []
    for r in records:
        ref = refs.get(r["batch"])
        if ref is None or r is ref:
            continue
        per_round = [a / b for a, b in zip(r.get("round_images_per_s", []), ref.get("round_images_per_s", []))]
        out.append({"model_file": r.get("model_file"), "backend": r["backend"], "precision": r["precision"],
                    "device": r.get("device", "cpu"), "batch": r["batch"], "over": " ".join(reference),
                    "ratio": r["images_per_s"] / ref["images_per_s"], "ratio_per_round": per_round})
    return out


DEVICE_SUFFIXES = {"": {}, "cuda": {"device": "cuda"}, "cuda-fp16": {"device": "cuda", "half": True}}


def parse_model_spec(spec: str) -> tuple[str, dict]:
    """``PATH[@cuda|@cuda-fp16]`` -> (path, load_backend keyword arguments): a .pt on the GPU
    (FP32 or FP16), an .onnx with ONNX Runtime's CUDA provider (FP16 is a model of its own)."""
    path, sep, where = spec.rpartition("@")
    if not sep or "/" in where or "." in where:  # no suffix: an "@" inside the path itself
        path, where = spec, ""
    if where not in DEVICE_SUFFIXES:
        raise ValueError(f"{spec}: unknown device {where!r}; use PATH, PATH@cuda or PATH@cuda-fp16")
    kwargs = dict(DEVICE_SUFFIXES[where])
    if path.endswith(".onnx"):
        if kwargs.get("half"):
            raise ValueError(f"{spec}: ONNX Runtime runs the model's own precision; export an FP16 model instead")
        return path, ({"providers": ["cuda", "cpu"]} if kwargs else {})
    if kwargs and not path.endswith((".pt", ".pth")):
        raise ValueError(f"{spec}: @{where} applies to .pt and .onnx models (an engine runs on its own GPU)")
    return path, kwargs


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
