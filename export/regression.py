"""Parity (ONNX Runtime vs PyTorch) and the accuracy regression table across precisions."""
from __future__ import annotations

import time

import numpy as np

from wsol_edge.metrics import iou_matrix
from wsol_edge.postprocess import cams_to_boxes

from .quantize import int8_flavour


def parity(pytorch_backend, onnx_backend, samples, batch_size: int = 16) -> dict:
    """Same images through both: max |logit| diff, max |CAM| diff (raw and relative to the CAM's
    range), top-1 agreement, and the share of images whose wsoleval box (at the model's threshold,
    top-1 CAM, normalised as the ONNX model says: min-max or IVR) is identical."""
    from wsol_edge.evaluation import iter_batches

    meta = onnx_backend.meta
    size, tau = int(meta["input_size"]), float(meta["cam_threshold"])
    n = same_box = same_cls = 0
    max_logit = max_cam = max_cam_rel = 0.0
    for images, _, _, _, _, _ in iter_batches(samples, size, meta["mean"], meta["std"], batch_size):
        if images is None:
            continue
        a, b = pytorch_backend.infer(images), onnx_backend.infer(images)
        max_logit = max(max_logit, float(np.abs(a["logits"] - b["logits"]).max()))
        d = np.abs(a["cams"] - b["cams"])
        max_cam = max(max_cam, float(d.max()))
        rng = np.ptp(a["cams"].reshape(len(images), -1), axis=1).clip(min=1e-12)
        max_cam_rel = max(max_cam_rel, float((d.reshape(len(images), -1).max(1) / rng).max()))
        ba, _ = cams_to_boxes(a["cams"], tau, size, meta.get("ivr_percentile"))
        bb, _ = cams_to_boxes(b["cams"], tau, size, meta.get("ivr_percentile"))
        same_box += int((ba == bb).all(1).sum())
        same_cls += int((a["class_ids"] == b["class_ids"]).sum())
        n += len(images)
    return {"num_images": n, "max_abs_logit_diff": max_logit, "max_abs_cam_diff": max_cam,
            "max_cam_diff_relative_to_range": max_cam_rel, "top1_agreement": 100.0 * same_cls / n,
            "identical_boxes": 100.0 * same_box / n, "cam_threshold": tau}


def compare_boxes(ref_boxes: np.ndarray, boxes: np.ndarray) -> dict:
    """Mean IoU and share of changed boxes between two (N, 4) box arrays."""
    ious = np.array([iou_matrix(a[None], b[None])[0, 0] for a, b in zip(ref_boxes, boxes)])
    return {"mean_box_iou_vs_fp32": float(ious.mean()), "boxes_changed": float(100.0 * (ref_boxes != boxes).any(1).mean())}


def regression_table(backends: list, samples, batch_size: int = 16, progress: bool = True,
                     ivr_percentile: float | None = None, deployed_threshold: float | None = None) -> list[dict]:
    """Evaluate each backend on the same samples; the first is the FP32 reference for box changes,
    compared at the reference's GT-known threshold. ``ivr_percentile`` and ``deployed_threshold``
    as in evaluation.evaluate_backend (each row then has ``deployed_threshold``)."""
    from wsol_edge.evaluation import evaluate_backend

    rows, ref_boxes, ref_tau_index = [], None, None
    for backend in backends:
        t0 = time.time()
        metrics, per = evaluate_backend(backend, samples, batch_size=batch_size, progress=progress,
                                        ivr_percentile=ivr_percentile, deployed_threshold=deployed_threshold)
        if ref_boxes is None:
            ref_tau_index = int(np.argmin(np.abs(np.arange(0, 1, 0.01) - metrics["gt_known_threshold"])))
            ref_boxes = per["boxes"][:, ref_tau_index]
        changes = compare_boxes(ref_boxes, per["boxes"][:, ref_tau_index])
        meta = backend.meta
        # labelled as in the committed tables: "u8s8 reduce-range"
        variant = int8_flavour(meta.get("activation_type", "int8"), meta.get("reduce_range", False)).replace(
            "_reduce_range", " reduce-range") if backend.precision == "int8" else None
        rows.append({"backend": backend.name, "precision": backend.precision, "variant": variant, "metrics": metrics,
                     "box_comparison": {**changes, "at_threshold": ref_tau_index / 100},
                     "deployed_threshold": per.get("deployed_threshold"), "eval_seconds": time.time() - t0})
    return rows


def format_table(rows: list[dict]) -> str:
    deployed = all(r.get("deployed_threshold") for r in rows)
    own = " GT-known Loc at the model's tau |" if deployed else ""
    lines = [f"| backend | precision | Top-1 Cls | GT-known Loc |{own} MaxBoxAccV2 | mean box IoU vs PyTorch FP32 | "
             "boxes changed (%) |", "|---|---|---|---|" + ("---|" if deployed else "") + "---|---|---|"]
    for r in rows:
        m, c = r["metrics"], r["box_comparison"]
        prec = r["precision"] + (f" ({r['variant']})" if r.get("variant") else "")
        d = r.get("deployed_threshold")
        at_own = f" {d['gt_known_loc']:.2f} ({d['cam_threshold']:.2f}) |" if deployed else ""
        lines.append(f"| {r['backend']} | {prec} | {m['top1_cls']:.2f} | {m['gt_known_loc']:.2f} |{at_own} "
                     f"{m['max_box_acc_v2']:.2f} | {c['mean_box_iou_vs_fp32']:.4f} | {c['boxes_changed']:.2f} |")
    return "\n".join(lines)
