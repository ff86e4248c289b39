"""Checkpoint -> ONNX with full metadata, including the deployment CAM threshold (wsol_edge/threshold.py)."""
from __future__ import annotations

import sys
from pathlib import Path

from wsol_edge.export_metadata import FORMAT
from wsol_edge.threshold import choose_threshold

from .onnx_export import export_onnx


def export_checkpoint(checkpoint: str | Path, output: str | Path, *, threshold: float | None = None,
                      threshold_samples=None, threshold_images: int = 200, with_all_cams: bool = False,
                      input_size: int | None = None, protocol: str = "wsoleval", tta: str | None = None,
                      tta_sizes: tuple[int, ...] | None = None, ivr_percentile: float | None = None) -> dict:
    """``tta="flip"`` puts flip test-time augmentation in the graph (wsol_edge/models/tta.py: a second
    pass on the mirror, in the same batch), ``tta_sizes`` a pass at each of those input sizes; the
    threshold is then given or chosen with them.

    ``ivr_percentile`` makes the model's score maps IVR ones (postprocess.ivr_scoremap): the metadata
    carries the percentile, so every runtime (Localizer, ``wsol_edge.run``, TensorRT through the
    engine's sidecar) normalises as the threshold was chosen. It stays out of the graph: the
    normalisation runs where min-max does, on the upsampled map in postprocessing."""
    from wsol_edge.argtypes import tta_flags
    from wsol_edge.backends.pytorch_backend import PyTorchBackend
    from wsol_edge.postprocess import check_ivr_percentile

    if ivr_percentile is not None:
        check_ivr_percentile(ivr_percentile)
        if protocol != "wsoleval":
            raise ValueError(f"--ivr-percentile is defined on the wsoleval score map, not the {protocol} protocol's")

    # a size other than the trained one only with the trained size among tta_sizes (PyTorchBackend says why)
    backend = PyTorchBackend(checkpoint, all_cams=True, tta=tta, tta_sizes=tta_sizes, input_size=input_size)
    served_size = int(backend.meta["input_size"])
    if threshold is not None:
        if not 0.0 <= threshold < 1.0:
            raise ValueError("--cam-threshold must be in [0, 1)")
        source = "given on the command line"
    elif threshold_samples is not None:
        threshold, source = choose_threshold(backend, threshold_samples, threshold_images,
                                             ivr_percentile=ivr_percentile)
    elif ivr_percentile is not None:
        raise ValueError(f"{checkpoint}'s CAM threshold was chosen on min-max score maps: with --ivr-percentile "
                         "give --cam-threshold or a dataset to choose it on IVR maps (--threshold-data-root)")
    elif backend.meta.get("cam_threshold") is not None:
        threshold, source = backend.meta["cam_threshold"], f"from the checkpoint: {backend.meta['cam_threshold_source']}"
    elif augmented := tta_flags(backend.meta["tta"], backend.meta["tta_sizes"]):
        raise ValueError(f"{checkpoint}'s CAM threshold was chosen without {augmented}: give "
                         "--cam-threshold or a dataset to choose it on with it (--threshold-data-root)")
    else:
        raise ValueError(f"{checkpoint} carries no CAM threshold (trained with --threshold-images 0, on images "
                         "without boxes, or before checkpoints had one): give --cam-threshold or a dataset to "
                         "choose it on (--threshold-data-root)")
    meta = {**backend.meta, "wsol_edge_format": FORMAT, "protocol": protocol, "cam_threshold": float(threshold),
            "cam_threshold_source": source, "precision": "fp32", "source_checkpoint": Path(checkpoint).name,
            "scoremap_normalization": "min-max" if ivr_percentile is None else "ivr", "ivr_percentile": ivr_percentile,
            "outputs": "logits, cams (top-1 class, raw), class_ids" + (", cams_all" if with_all_cams else "")}
    export_onnx(backend.model, output, meta, input_size=served_size, with_all_cams=with_all_cams)
    print(f"wrote {output} (CAM threshold {threshold:.2f}: {source})", file=sys.stderr)
    return meta
