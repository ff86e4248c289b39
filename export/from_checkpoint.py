"""Checkpoint -> ONNX with full metadata, including a CAM threshold chosen on held-out images."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from wsol_edge.export_metadata import FORMAT

from .onnx_export import export_onnx


def choose_threshold(backend, samples, num_images: int = 200, seed: int = 0) -> tuple[float, str]:
    """The GT-known Loc best threshold on ``num_images`` images drawn (seeded) from ``samples``.

    cub50 has no validation split, so by default this is a held-out draw from the *train* split
    with its boxes (wsolevaluation's "train-fullsup" idea); the source is recorded in metadata.
    """
    from wsol_edge.evaluation import evaluate_backend

    n = min(num_images, len(samples))
    idx = np.sort(np.random.default_rng(seed).choice(len(samples), n, replace=False))
    metrics, _ = evaluate_backend(backend, samples.subset(idx.tolist()), batch_size=16)
    return metrics["gt_known_threshold"], f"GT-known Loc best tau on {n} images of {samples.name} (seed {seed})"


def export_checkpoint(checkpoint: str | Path, output: str | Path, *, threshold: float | None = None,
                      threshold_samples=None, threshold_images: int = 200, with_all_cams: bool = False,
                      input_size: int | None = None, protocol: str = "wsoleval") -> dict:
    from wsol_edge.backends.pytorch_backend import PyTorchBackend

    backend = PyTorchBackend(checkpoint, all_cams=True)
    cfg_size = int(backend.meta["input_size"])
    if input_size is not None and input_size != cfg_size:
        raise ValueError(f"{checkpoint} was trained at {cfg_size}x{cfg_size}; --input-size {input_size} "
                         "would change the CAM grid and the threshold; export at the trained size")
    if threshold is not None:
        if not 0.0 <= threshold < 1.0:
            raise ValueError("--cam-threshold must be in [0, 1)")
        source = "given on the command line"
    elif threshold_samples is not None:
        threshold, source = choose_threshold(backend, threshold_samples, threshold_images)
    else:
        raise ValueError("give --cam-threshold or a dataset to choose it on (--threshold-data-root)")
    meta = {**backend.meta, "wsol_edge_format": FORMAT, "protocol": protocol, "cam_threshold": float(threshold),
            "cam_threshold_source": source, "precision": "fp32", "source_checkpoint": Path(checkpoint).name,
            "outputs": "logits, cams (top-1 class, raw), class_ids" + (", cams_all" if with_all_cams else "")}
    export_onnx(backend.model, output, meta, input_size=cfg_size, with_all_cams=with_all_cams)
    print(f"wrote {output} (CAM threshold {threshold:.2f}: {source})", file=sys.stderr)
    return meta
