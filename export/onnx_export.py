"""Checkpoint -> ONNX with the CAM head inside the graph (the project's inference contract).

Input ``images float32[B,3,H,W]`` (normalised, dynamic batch); outputs ``logits[B,K]``,
``cams[B,h,w]`` (raw CAM of the top-1 class: the classifier row is gathered and contracted with
the features in the graph) and ``class_ids[B]`` (int64). ``with_all_cams`` adds ``cams_all[B,K,h,w]``
for evaluation (GT-known Loc needs the ground-truth class's map, which may not be the top-1).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

OPSET = 17


def inference_graph(model, with_all_cams: bool = False):
    """images -> (logits, cams of the top-1 class, class_ids[, cams_all]) for any method's inference
    model (``forward``, ``cams``, ``all_cams``: see CamModel)."""
    from torch import nn

    class InferenceGraph(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, images):
            logits, feats = self.m(images)
            class_ids = logits.argmax(1)
            cams = self.m.cams(feats, class_ids)                           # [B, h, w]
            if with_all_cams:
                return logits, cams, class_ids, self.m.all_cams(feats)
            return logits, cams, class_ids

    return InferenceGraph(model).eval()


def export_onnx(model, path: str | Path, meta: dict, *, input_size: int = 224, with_all_cams: bool = False,
                simplify: bool = True) -> Path:
    """Trace ``model`` (a method's inference model in eval mode), check, simplify (onnxsim constant folding), write
    atomically with ``meta`` in metadata_props."""
    import onnx
    import torch

    from wsol_edge.atomic import atomic_write_bytes

    from wsol_edge.export_metadata import write_onnx_metadata

    graph = inference_graph(model, with_all_cams)
    names = ["logits", "cams", "class_ids"] + (["cams_all"] if with_all_cams else [])
    dummy = torch.zeros(2, 3, input_size, input_size)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # fixed input size is intended
        warnings.filterwarnings("ignore", message="Constant folding")
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript")
        torch.onnx.export(graph, (dummy,), buf, dynamo=False, opset_version=OPSET, input_names=["images"],
                          output_names=names, dynamic_axes={n: {0: "batch"} for n in ["images", *names]},
                          do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    if simplify:
        proto = simplify_model(proto, input_size)
    write_onnx_metadata(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write_bytes(path, proto.SerializeToString())


def simplify_model(proto, input_size: int, atol: float = 1e-4):
    """Constant folding and dead-node removal with onnxscript's optimizer, then a numeric check
    against the unsimplified graph on ONNX Runtime.

    onnx-simplifier (onnxsim 0.8.1) was tried first and silently changed this model's logits by
    0.17 (EfficientNet-Lite0, stride 16), so no simplifier is trusted without the check.
    """
    import numpy as np
    import onnxruntime as ort
    from onnxscript import optimizer

    simplified = optimizer.optimize(proto)
    x = np.random.default_rng(0).normal(size=(2, 3, input_size, input_size)).astype(np.float32)
    before = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    after = ort.InferenceSession(simplified.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    for name, a, b in zip(("logits", "cams", "class_ids", "cams_all"), before, after):
        if a.shape != b.shape or np.abs(a.astype(np.float64) - b).max() > atol:
            raise RuntimeError(f"graph simplification changed output {name!r}; export with simplify=False")
    return simplified
