"""The embedding API: ``Localizer("model.onnx")(frame_bgr)`` -> class, score, box in frame pixels, CAM."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..argtypes import tta_flags
from ..backends import Backend, BackendError, load_backend
from ..imageio import ImageReadError, to_rgb_uint8
from ..postprocess import box_from_scoremap, cam_to_scoremap, check_ivr_percentile
from ..preprocess import boxes_from_frame, eval_input


@dataclass
class Localization:
    class_id: int
    class_name: str
    score: float                      # softmax probability of the top-1 class
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the frame's pixels
    cam: np.ndarray = field(repr=False)      # raw CAM of the top-1 class (h, w)
    scoremap: np.ndarray = field(repr=False)  # normalised map in the model's input frame
    topk: list[tuple[int, str, float]] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"class_id": self.class_id, "class_name": self.class_name, "score": round(self.score, 6),
                "box": [round(v, 2) for v in self.box], "topk": [[i, n, round(s, 6)] for i, n, s in self.topk],
                "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()}}


class MetadataOnly(Backend):
    """A model's metadata without its network (Localizer.from_metadata)."""

    name = "metadata"

    def __init__(self, metadata: str | Path | dict):
        super().__init__()
        import json

        from ..export_metadata import check_metadata

        if isinstance(metadata, dict):
            meta = metadata
        else:
            try:
                meta = json.loads(Path(metadata).read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise FileNotFoundError(f"{metadata}: no such metadata file") from None
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{metadata}: not a JSON metadata file ({exc})") from None
        self.meta = check_metadata(meta, "metadata" if isinstance(metadata, dict) else str(metadata))

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        raise BackendError("this Localizer was built from metadata alone (Localizer.from_metadata): run the network "
                           "where it is served and give its outputs to postprocess()")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def box_to_frame_pixels(box: np.ndarray, frame_wh: tuple[int, int], size: int) -> tuple[float, float, float, float]:
    """A box in the size x size frame (inclusive pixel indices) -> the frame's pixels, clipped."""
    w, h = frame_wh
    x0, y0, x1, y1 = boxes_from_frame(np.asarray(box)[None], (w, h), size)[0]
    return (float(np.clip(x0, 0, w - 1)), float(np.clip(y0, 0, h - 1)),
            float(np.clip(x1, 0, w - 1)), float(np.clip(y1, 0, h - 1)))


class Localizer:
    """Load a model (.onnx / .engine / .pt) and localize the top-1 class in BGR frames.

    ``threshold`` defaults to the one in the model's metadata: chosen on boxed images at the end of
    training or at export (wsol_edge/threshold.py). Each map is normalised as the model says: min-max,
    or inferior value removal (postprocess.ivr_scoremap) for a model exported with
    ``--ivr-percentile``. ``ivr_percentile`` overrides that (0 is min-max); a percentile other than
    the model's needs a ``threshold`` chosen on such maps.
    """

    def __init__(self, model: str | Path | Backend, threshold: float | None = None, topk: int = 1,
                 ivr_percentile: float | None = None, **backend_kwargs):
        # arguments are checked before loading the model, not at the first frame
        if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
            raise ValueError(f"topk must be a whole number >= 1 (the classes listed per frame), got {topk!r}")
        if ivr_percentile is not None:
            check_ivr_percentile(ivr_percentile)
        if isinstance(model, Backend) and backend_kwargs:  # they would be dropped: the model is already loaded
            raise ValueError(f"{', '.join(sorted(backend_kwargs))}: options for loading a model file; this "
                             "backend is loaded already (give them to load_backend, or give the Localizer the path)")
        self.backend = model if isinstance(model, Backend) else load_backend(model, **backend_kwargs)
        meta = self.backend.meta
        own_ivr = meta.get("ivr_percentile")  # checked when the metadata was read (export_metadata.decode)
        if ivr_percentile is not None and ivr_percentile != own_ivr and threshold is None:
            maps = "min-max maps" if own_ivr is None else f"IVR maps of percentile {own_ivr}"
            raise ValueError(f"--ivr-percentile {ivr_percentile}: the model's CAM threshold was chosen on {maps}; "
                             "give --threshold (threshold=...) chosen on the maps you ask for (python -m "
                             f"wsol_edge.evaluate --ivr-percentile reports the best one), or export the model "
                             f"with --ivr-percentile {ivr_percentile}")
        self.ivr_percentile = own_ivr if ivr_percentile is None else ivr_percentile
        if threshold is None:
            threshold = meta.get("cam_threshold")
        tta = tta_flags(meta.get("tta"), meta.get("tta_sizes"))
        if threshold is None and tta:
            # a checkpoint served with TTA: its own threshold was chosen on maps without it (as export
            # onnx --tta refuses); an ONNX model exported with --tta carries one chosen with it
            raise ValueError(f"{tta}: the checkpoint's CAM threshold was chosen without it; give --threshold "
                             f"(threshold=...), or serve an ONNX model exported with {tta} --threshold-data-root DATA")
        if threshold is None:
            import sys

            print("warning: the model carries no CAM threshold; using 0.5 (pass threshold=... / --threshold)",
                  file=sys.stderr)
            threshold = 0.5
        self.threshold = float(threshold)
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        self.size = int(meta["input_size"])
        self.mean, self.std = meta["mean"], meta["std"]
        self.class_names = list(meta["class_names"])
        self.topk = int(topk)

    @classmethod
    def from_metadata(cls, metadata: str | Path | dict, **kwargs) -> "Localizer":
        """A Localizer that pre- and postprocesses for a network run elsewhere: a DeepStream probe holding
        nvinfer's tensor meta, or a Triton client of its own. ``metadata`` is the ``wsol_edge.json`` that
        ``export triton`` / ``export deepstream`` write beside their config (or its dict); ``postprocess``
        then takes the network's ``logits``, ``cams`` and ``class_ids`` with the frames' sizes."""
        return cls(MetadataOnly(metadata), **kwargs)

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        if not isinstance(frame_bgr, np.ndarray) or frame_bgr.ndim not in (2, 3) or min(frame_bgr.shape[:2]) < 1:
            raise ImageReadError(f"frame must be an HxW or HxWxC numpy image, got "
                                 f"{getattr(frame_bgr, 'shape', type(frame_bgr).__name__)}")
        return eval_input(to_rgb_uint8(frame_bgr, source="frame"), self.size, self.mean, self.std)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.backend.infer(batch)

    def postprocess(self, outputs: dict[str, np.ndarray], frame_sizes: list[tuple[int, int]]) -> list[Localization]:
        probs = softmax(np.asarray(outputs["logits"]).astype(np.float64))
        # class_ids as the graph gives them; from the logits where a caller's server left them out
        class_ids = (np.asarray(outputs["class_ids"]).reshape(len(frame_sizes)) if "class_ids" in outputs
                     else probs.argmax(axis=1))
        results = []
        for i, (w, h) in enumerate(frame_sizes):
            cid = int(class_ids[i])
            scoremap = cam_to_scoremap(outputs["cams"][i], self.size, ivr_percentile=self.ivr_percentile)
            box = box_from_scoremap(scoremap, self.threshold)
            order = np.argsort(-probs[i])[: self.topk]
            results.append(Localization(
                class_id=cid, class_name=self._name(cid), score=float(probs[i, cid]),
                box=box_to_frame_pixels(box, (w, h), self.size), cam=outputs["cams"][i], scoremap=scoremap,
                topk=[(int(k), self._name(int(k)), float(probs[i, k])) for k in order]))
        return results

    def _name(self, cid: int) -> str:
        return self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)

    def batch(self, frames: list[np.ndarray]) -> list[Localization]:
        if not frames:
            return []
        t0 = time.perf_counter()
        x = np.stack([self.preprocess(f) for f in frames])
        t1 = time.perf_counter()
        out = self.infer(x)
        t2 = time.perf_counter()
        res = self.postprocess(out, [(f.shape[1], f.shape[0]) for f in frames])
        t3 = time.perf_counter()
        n = len(frames)
        for r in res:
            r.latency_ms = {"preprocess": (t1 - t0) * 1e3 / n, "inference": (t2 - t1) * 1e3 / n,
                            "postprocess": (t3 - t2) * 1e3 / n}
        return res

    def __call__(self, frame_bgr: np.ndarray) -> Localization:
        return self.batch([frame_bgr])[0]

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
