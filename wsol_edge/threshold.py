"""The deployment CAM threshold: the GT-known Loc best tau on a seeded draw of boxed images.

Evaluation sweeps tau (MaxBoxAccV2, GT-known best tau); a deployed localizer needs one value.
Training stores it in the checkpoint (``python -m wsol_edge.train --threshold-images``) and export
copies it into the model metadata, so ``wsol_edge.run`` never falls back to an arbitrary 0.5.
"""
from __future__ import annotations

import numpy as np


def boxed_indices(samples) -> list[int]:
    """Indices of the samples that have at least one GT box (a labels-only set has none)."""
    return [i for i, s in enumerate(samples) if len(s.boxes)]


def choose_threshold(backend, samples, num_images: int = 200, seed: int = 0,
                     skip_bad: bool = False, ivr_percentile: float | None = None) -> tuple[float, str]:
    """The GT-known Loc best threshold on ``num_images`` boxed images drawn (seeded) from ``samples``.

    cub50 has no validation split, so the default source is the *train* split with its boxes
    (wsolevaluation's "train-fullsup" idea); the returned source string says which images were used.
    ``backend`` must return ``cams_all`` (the GT-class map is scored); ``skip_bad`` skips unreadable
    images instead of stopping. ``ivr_percentile``: chosen on IVR score maps (the threshold of a model
    served with them), not min-max ones.
    """
    from .evaluation import evaluate_backend

    boxed = boxed_indices(samples)
    if not boxed:
        raise ValueError(f"{samples.name} has no box annotations to choose a CAM threshold on")
    n = min(num_images, len(boxed))
    idx = np.sort(np.random.default_rng(seed).choice(boxed, n, replace=False))
    metrics, _ = evaluate_backend(backend, samples.subset(idx.tolist()), batch_size=16, skip_bad=skip_bad,
                                  ivr_percentile=ivr_percentile)
    maps = "" if ivr_percentile is None else f", IVR score maps (percentile {ivr_percentile})"
    return (float(metrics["gt_known_threshold"]),
            f"GT-known Loc best tau on {n} images of {samples.name} (seed {seed}){maps}")
