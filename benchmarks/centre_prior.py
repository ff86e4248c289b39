"""How much of a model's localisation is a fixed, image-blind map? Per checkpoint, on a split: the
model's own MaxBoxAccV2 (its GT-class map, SAT's class-agnostic mask), the MaxBoxAccV2 of its
*mean* score map served to every image (the prior its maps share), and the share of the maps'
variance that the mean map explains (R^2: 1 - sum (m - mean)^2 / sum (m - grand mean)^2 over
images and pixels). Also, with no model, the MaxBoxAccV2 of the training boxes' own prior (the mean
box indicator of the training images, the best-informed fixed map). A model whose maps gain little
over their own mean map localises mostly by position, not by the image.
``python -m benchmarks.centre_prior --checkpoints A.pt B.pt --data-root ../shared/data/cub50 --output R.json``

Score maps follow the protocol (wsoleval: plain resize to the input size, upsampled map min-max
normalised; MaxBoxAccV2 over all outer contours at IoU 30/50/70); the mean map is re-normalised
to [0, 1] before it is scored."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from wsol_edge.argtypes import output_file, positive_int


class MapStatistics:
    """Running sums of score maps: their mean map and the share of variance it explains."""

    def __init__(self):
        self.count, self.total, self.total_sq, self.sum_map = 0, 0.0, 0.0, None

    def add(self, scoremap: np.ndarray) -> None:
        m = scoremap.astype(np.float64)
        self.sum_map = m.copy() if self.sum_map is None else self.sum_map + m
        self.count += 1
        self.total += float(m.sum())
        self.total_sq += float((m * m).sum())

    def mean_map(self) -> np.ndarray:
        return self.sum_map / self.count

    def explained_share(self) -> float:
        """R^2 of the mean map as a predictor of every image's map (0: none, 1: every map the same)."""
        mean = self.mean_map()
        pixels = mean.size
        within = self.total_sq - self.count * float((mean * mean).sum())
        total = self.total_sq - self.total ** 2 / (self.count * pixels)
        return float(1.0 - within / total) if total > 0 else float("nan")


def normalised(m: np.ndarray) -> np.ndarray:
    from wsol_edge.postprocess.boxes import normalize_scoremap

    return normalize_scoremap(m.astype(np.float32))


def multi_contour_scores(acc) -> dict:
    """MaxBoxAccV2 and its IoU 30/50/70 parts from a multi-contour ``BoxAccumulator``."""
    res = acc.max_box_acc((30, 50, 70))
    return {"max_box_acc_v2": float(np.mean([r["acc"] for r in res.values()])),
            "max_box_acc_multi_contour": {str(k): r["acc"] for k, r in res.items()}}


def fixed_map_box_acc_v2(fixed: np.ndarray, boxes_per_image: list[np.ndarray]) -> dict:
    """MaxBoxAccV2 (and its IoU 30/50/70 parts) of one score map served to every image; its boxes
    are searched once, not once per image."""
    from wsol_edge.metrics.box_accuracy import BoxAccumulator

    acc = BoxAccumulator(multi_contour=True)
    per_tau = acc.boxes_of(fixed)
    for gt in boxes_per_image:
        acc.add_boxes(per_tau, gt)
    return multi_contour_scores(acc)


def frame_boxes(sample, size: int) -> np.ndarray:
    """A sample's GT boxes in the protocol's size x size frame (the image is decoded only when its
    size is not known without it)."""
    from wsol_edge.preprocess import boxes_to_frame

    w, h = sample.size if sample.size is not None else sample.load().shape[1::-1]
    return np.asarray(boxes_to_frame(sample.boxes, (w, h), size), np.int64).reshape(-1, 4)


def box_prior(samples, size: int) -> np.ndarray:
    """Mean indicator of the GT boxes (union per image) in the protocol's frame."""
    acc = np.zeros((size, size), np.float64)
    for s in samples:
        inside = np.zeros((size, size), bool)
        for x0, y0, x1, y1 in frame_boxes(s, size):
            inside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
        acc += inside
    return acc / len(samples)


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.utils.data import DataLoader

    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.checkpoint import checkpoint_provenance
    from wsol_edge.data import open_dataset
    from wsol_edge.data.torch_dataset import EvalDataset, collate_skip_bad
    from wsol_edge.metrics.box_accuracy import BoxAccumulator
    from wsol_edge.modelio import load_model
    from wsol_edge.postprocess import cam_to_scoremap
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.centre_prior", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="*", default=[])
    p.add_argument("--data-root", required=True, help="CUB-layout folder")
    p.add_argument("--split", default="test")
    p.add_argument("--prior-split", default="train", help="the split whose boxes give the data prior")
    p.add_argument("--size", type=positive_int, default=224, help="the protocol's input size")
    p.add_argument("--max-images", type=positive_int, default=None, help="score only the first N images (smoke runs)")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for path in args.checkpoints:  # before the minutes the prior and the other checkpoints take
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")

    samples = open_dataset("cub", args.data_root, args.split)
    if args.max_images:
        samples = samples.subset(range(min(args.max_images, len(samples))))
    boxes = [frame_boxes(s, args.size) for s in samples]
    prior_samples = open_dataset("cub", args.data_root, args.prior_split)
    prior = normalised(box_prior(prior_samples, args.size))
    data_prior = {"split": args.prior_split, "num_images": len(prior_samples), **fixed_map_box_acc_v2(prior, boxes)}
    print(f"training-box prior: MaxBoxAccV2 {data_prior['max_box_acc_v2']:.2f}", file=sys.stderr)

    rows = []
    for path in args.checkpoints:
        model, cfg, state = load_model(path)
        if cfg["input_size"] != args.size:
            raise ValueError(f"{path}: trained at {cfg['input_size']}, this study scores at {args.size}")
        loader = DataLoader(EvalDataset(samples, model.mean, model.std, args.size, False), batch_size=32,
                            collate_fn=collate_skip_bad)
        own, stats = BoxAccumulator(multi_contour=True), MapStatistics()
        with torch.inference_mode():
            for batch, _ in loader:
                _, feats = model(batch["image"])
                for cam, b in zip(model.cams(feats, batch["label"]).numpy(), batch["boxes"]):
                    sm = cam_to_scoremap(cam, args.size)
                    own.add(sm, b)
                    stats.add(sm)
        own_v2 = multi_contour_scores(own)["max_box_acc_v2"]
        fixed = fixed_map_box_acc_v2(normalised(stats.mean_map()), boxes)
        row = {**checkpoint_provenance(path, state), "method": cfg.get("method"), "num_images": stats.count,
               "max_box_acc_v2": own_v2, "mean_map": fixed, "over_mean_map": own_v2 - fixed["max_box_acc_v2"],
               "explained_by_mean_map": stats.explained_share(),
               "over_data_prior": own_v2 - data_prior["max_box_acc_v2"]}
        print(f"{path}: own {own_v2:.2f}, its mean map {fixed['max_box_acc_v2']:.2f}, "
              f"R^2 of the mean map {row['explained_by_mean_map']:.3f}", file=sys.stderr)
        rows.append(row)
    atomic_write_json(args.output, {"kind": "centre_prior", "dataset": samples.name, "split": args.split,
                                    "protocol": "wsoleval", "input_size": args.size,
                                    "cam_class": "ground-truth class (SAT: its class-agnostic map)",
                                    "data_prior": data_prior, "checkpoints": rows,
                                    "command": command_line("benchmarks.centre_prior", argv),
                                    "commit": git_commit(), "machine": machine_info()})
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
