"""Scores raw model outputs (logits + CAMs) against a dataset: every metric of the protocol page.

Backend-agnostic on purpose: PyTorch, ONNX Runtime and TensorRT outputs go through the same
code, so accuracy differences between backends come from the models, not the scoring.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .data import check_classes
from .metrics import BoxAccumulator, PxAPAccumulator, SatBoxAccumulator, topk_correct
from .postprocess import DEFAULT_CAM_THRESHOLDS, cam_to_scoremap, check_ivr_percentile, sat_scoremap


@dataclass
class LocalizationScorer:
    """Feed batches with ``add``; ``compute`` returns the metrics dict of results-schema.md.

    ``cams`` must be the map of the class to score: the GT class for GT-known Loc and MaxBoxAcc
    (the wsolevaluation convention). Top-1/Top-5 Loc reuse it: when the top-1 (or a top-5) class
    is the GT class its CAM *is* the GT-class CAM, and when it is not, the image is wrong anyway,
    so no second CAM is needed. Both use the threshold chosen for GT-known Loc.
    """

    protocol: str = "wsoleval"
    size: int = 224
    cam_thresholds: np.ndarray = field(default_factory=lambda: DEFAULT_CAM_THRESHOLDS)
    iou_thresholds: tuple = (30, 50, 70)
    with_classification: bool = True
    map_offset_px: tuple = (0.0, 0.0)  # (dx, dy) applied to every upsampled map: postprocess.translate_map
    ivr_percentile: float | None = None  # None: min-max (rule 2); else postprocess.ivr_scoremap's percentile

    def __post_init__(self):
        if self.protocol not in ("wsoleval", "sat"):
            raise ValueError(f"unknown protocol {self.protocol!r}: use 'wsoleval' or 'sat'")
        if self.ivr_percentile is not None and self.protocol != "wsoleval":
            raise ValueError("IVR normalisation is defined on the wsoleval score map; the sat protocol "
                             "normalises before its resize")
        if self.ivr_percentile is not None:
            check_ivr_percentile(self.ivr_percentile)  # here, not at the first image
        if self.protocol == "wsoleval":
            self.single = BoxAccumulator(self.cam_thresholds, multi_contour=False)
            self.multi = BoxAccumulator(self.cam_thresholds, multi_contour=True)
        else:
            self.single = SatBoxAccumulator(self.cam_thresholds)
            self.multi = None
        self.pxap = PxAPAccumulator(self.cam_thresholds)
        self.has_masks = False
        self.top1: list[np.ndarray] = []
        self.top5: list[np.ndarray] = []

    def scoremap(self, cam: np.ndarray) -> np.ndarray:
        if self.protocol == "wsoleval":
            return cam_to_scoremap(cam, self.size, self.map_offset_px, self.ivr_percentile)
        return sat_scoremap(cam, self.size, offset_px=self.map_offset_px)

    def add(self, logits, cams, labels, gt_boxes, masks=None) -> list[np.ndarray]:
        """Returns the score maps (for overlays)."""
        if self.with_classification:
            self.top1.append(topk_correct(logits, labels, 1))
            self.top5.append(topk_correct(logits, labels, 5))
        maps = []
        for i, cam in enumerate(np.asarray(cams)):
            m = self.scoremap(cam)
            self.single.add(m, gt_boxes[i])
            if self.multi is not None:
                self.multi.add(m, gt_boxes[i])
            if masks is not None and masks[i] is not None:
                self.has_masks = True
                self.pxap.add(m, masks[i])
            maps.append(m)
        return maps

    def compute(self) -> dict:
        single = self.single.max_box_acc(self.iou_thresholds)
        best50 = int(np.argmax(self.single.accuracy_curve(50)))
        loc_ok = self.single.correct_at(best50, 50)
        out = {
            "gt_known_loc": single[50]["acc"] if 50 in single else float(loc_ok.mean() * 100),
            "gt_known_threshold": float(self.cam_thresholds[best50]),
            "max_box_acc": {str(k): v["acc"] for k, v in single.items()},
            "max_box_acc_best_threshold": {str(k): v["best_threshold"] for k, v in single.items()},
        }
        if self.multi is not None:
            multi = self.multi.max_box_acc(self.iou_thresholds)
            out["max_box_acc_multi_contour"] = {str(k): v["acc"] for k, v in multi.items()}
            out["max_box_acc_v2"] = float(np.mean([v["acc"] for v in multi.values()]))
        else:
            out["max_box_acc_v2"] = None  # multi-contour is not part of the SAT protocol
        if self.with_classification:
            top1, top5 = np.concatenate(self.top1), np.concatenate(self.top5)
            out.update({"top1_cls": float(top1.mean() * 100), "top5_cls": float(top5.mean() * 100),
                        "top1_loc": float((top1 & loc_ok).mean() * 100),
                        "top5_loc": float((top5 & loc_ok).mean() * 100)})
        if self.has_masks:
            out["pxap"] = self.pxap.compute()
        return out

    def at_threshold(self, tau: float) -> dict:
        """GT-known and Top-1 Loc at one fixed CAM threshold (a deployed model's), the swept threshold
        nearest to ``tau``. ``compute`` picks the best threshold on the scored images themselves, which
        a deployed model cannot; this is what it gets with the threshold it ships with."""
        index = int(np.argmin(np.abs(np.asarray(self.cam_thresholds) - tau)))
        ok = self.single.correct_at(index, 50)
        out = {"cam_threshold": float(self.cam_thresholds[index]), "gt_known_loc": float(ok.mean() * 100)}
        if self.with_classification:
            out["top1_loc"] = float((np.concatenate(self.top1) & ok).mean() * 100)
        return out

    def per_image(self) -> dict[str, np.ndarray]:
        """The per-image tables ``compute`` reduces (for the bootstrap in metrics/bootstrap.py):
        IoU at every CAM threshold, single contour (``ious_box``) and all contours (``ious_multi``,
        wsoleval only), and top-1/top-5 correctness."""
        out = {"cam_thresholds": np.asarray(self.cam_thresholds, np.float64), "ious_box": self.single.ious}
        if self.multi is not None:
            out["ious_multi"] = self.multi.ious
        if self.with_classification:
            out["top1"], out["top5"] = np.concatenate(self.top1), np.concatenate(self.top5)
        return out


def per_image_info(record: dict) -> dict:
    """What a per-image file says about the model it scored: taken from that model's result record."""
    keys = ("dataset", "split", "method", "backbone", "protocol", "input_size", "checkpoint", "checkpoint_sha256",
            "weights_sha256", "variant", "tta", "map_shift_px", "scoremap_normalization", "ivr_percentile", "commit", "metrics")
    return {k: record.get(k) for k in keys}


def write_per_image(path, tables: dict[str, np.ndarray], image_ids: list[str], info: dict) -> None:
    """One .npz (written atomically): the tables, the image ids in row order, and ``info`` (JSON)."""
    import io
    import json

    from .atomic import atomic_write_bytes

    if any(len(v) != len(image_ids) for k, v in tables.items() if k != "cam_thresholds"):
        raise ValueError("per-image tables and image ids differ in length")
    buf = io.BytesIO()
    np.savez_compressed(buf, image_ids=np.asarray(image_ids, dtype=str), info=np.asarray(json.dumps(info)), **tables)
    atomic_write_bytes(path, buf.getvalue())


def read_per_image(path) -> tuple[dict[str, np.ndarray], list[str], dict]:
    """Inverse of ``write_per_image``; a file that is not one is a ValueError naming it."""
    import json
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        info = json.loads(str(data.pop("info")))
        image_ids = [str(x) for x in data.pop("image_ids")]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a per-image file of wsol_edge.evaluate --per-image ({exc})") from None
    if "ious_box" not in data:
        raise ValueError(f"{path} is not a per-image file of wsol_edge.evaluate --per-image (no ious_box)")
    return data, image_ids, info


def eval_sample(sample, size: int, mean, std):
    """The protocol's eval transform of one sample: (image float32 3xSxS, label, GT boxes mapped with
    int(x * S / W), mask resized with nearest so its {0, 1, 255 = ignore} labels survive, or None).
    Raises ImageReadError for an unreadable image."""
    from .preprocess import boxes_to_frame, eval_input

    img = sample.load()
    mask = sample.load_mask()
    if mask is not None:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return (eval_input(img, size, mean, std), sample.label,
            boxes_to_frame(sample.boxes, (img.shape[1], img.shape[0]), size), mask)


def iter_batches(samples, size: int, mean, std, batch_size: int, skip_bad: bool = False):
    """Yield (images [B,3,S,S], labels, gt boxes in the S frame, masks, indices, skipped count)
    with the protocol's eval transform; torch-free so any backend can be scored."""
    from .imageio import ImageReadError

    batch, skipped = [], 0
    for i, s in enumerate(samples):
        try:
            batch.append((*eval_sample(s, size, mean, std), i))
        except ImageReadError:
            if not skip_bad:
                raise
            skipped += 1
            continue
        if len(batch) == batch_size:
            yield _stack(batch) + (skipped,)
            batch, skipped = [], 0
    if batch or skipped:
        yield (_stack(batch) if batch else (None,) * 5) + (skipped,)


def _stack(batch):
    return (np.stack([b[0] for b in batch]), np.array([b[1] for b in batch]), [b[2] for b in batch],
            [b[3] for b in batch], [b[4] for b in batch])


def evaluate_backend(backend, samples, *, protocol: str = "wsoleval", batch_size: int = 16,
                     cam_thresholds=DEFAULT_CAM_THRESHOLDS, skip_bad: bool = False, progress: bool = False,
                     ivr_percentile: float | None = None, deployed_threshold: float | None = None):
    """Score any backend (``infer`` returning ``cams_all``) on a SampleSet.

    Returns (metrics dict, per-image dict with ``boxes`` (N, T, 4) at every threshold, ``class_ids``,
    ``logits``). The GT-class CAM is taken from ``cams_all``: a model exported without it cannot
    give GT-known Loc, and is refused rather than scored with the top-1 map. ``ivr_percentile``
    scores IVR score maps instead of min-max ones (LocalizationScorer); with ``deployed_threshold``
    the per-image dict also holds ``deployed_threshold``: GT-known and Top-1 Loc at that one threshold.
    """
    from tqdm import tqdm

    meta = backend.meta
    check_classes(samples, meta.get("class_names"), f"{backend.name} {backend.precision}")
    size = int(meta["input_size"])
    scorer = LocalizationScorer(protocol, size, cam_thresholds, ivr_percentile=ivr_percentile)
    logits_all, ids_all, skipped = [], [], 0
    batches = iter_batches(samples, size, meta["mean"], meta["std"], batch_size, skip_bad)
    for images, labels, boxes, masks, _, nbad in tqdm(batches, total=-(-len(samples) // batch_size),
                                                     desc=f"{backend.name} {backend.precision}", disable=not progress):
        skipped += nbad
        if images is None:
            continue
        out = backend.infer(images)
        if "cams_all" not in out:
            raise ValueError(f"{backend.name}: the model has no 'cams_all' output, needed to score GT-known Loc: "
                             "export it with --with-all-cams (ONNX) or load the checkpoint with all_cams=True")
        cams = out["cams_all"][np.arange(len(labels)), labels]
        scorer.add(out["logits"], cams, labels, boxes, masks)
        logits_all.append(out["logits"])
        ids_all.append(out["class_ids"])
    metrics = scorer.compute()
    per_image = {"boxes": scorer.single.boxes if protocol == "wsoleval" else None,
                 "logits": np.concatenate(logits_all), "class_ids": np.concatenate(ids_all), "skipped": skipped}
    if deployed_threshold is not None:
        per_image["deployed_threshold"] = scorer.at_threshold(deployed_threshold)
    return metrics, per_image
