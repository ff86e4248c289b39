"""Where do a model's boxes sit against the ground truth, and how much of that is the model's own
left-right asymmetry? For each checkpoint, three maps of every image: the image's own pass, the
mirror's pass mirrored back, and their average (``evaluate --tta flip``). For each map: GT-known Loc,
its best threshold, and the mean offset of each edge of the box at that threshold (largest contour,
wsoleval) minus the ground-truth box, in pixels of the 224x224 frame (positive: right / down).

A model trained with random flips sees no left-right preference in the data, so what moves its box
centre one way on the image and the other way on the mirror is the model's own: half the difference
of the two passes' horizontal centre offsets (``model_x_bias_px``). The mean of the two is the data's
(``data_x_bias_px``). The vertical offset has no such split (no vertical flip is trained).
``python -m benchmarks.box_offsets --checkpoints runs/methods_12ep/main/cam/checkpoint.pt --data-root ../shared/data/cub50 --output benchmarks/results/cub50_box_offsets.json``"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

PASSES = ("image", "mirror", "flip_average")


def edge_offsets(boxes: np.ndarray, gt: np.ndarray) -> dict:
    """Mean (pred - gt) of x0, y0, x1, y1 and of the box centre over images; boxes (N, 4)."""
    d = np.asarray(boxes, float) - np.asarray(gt, float)
    return {"x0": float(d[:, 0].mean()), "y0": float(d[:, 1].mean()), "x1": float(d[:, 2].mean()),
            "y1": float(d[:, 3].mean()), "centre_x": float(((d[:, 0] + d[:, 2]) / 2).mean()),
            "centre_y": float(((d[:, 1] + d[:, 3]) / 2).mean())}


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.checkpoint import checkpoint_provenance
    from wsol_edge.evaluation import LocalizationScorer
    from wsol_edge.postprocess import box_from_scoremap
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    from .mirror_pass import build_parser, image_and_mirror_maps, load_checked, open_split

    args = build_parser("python -m benchmarks.box_offsets", __doc__.split("\n\n")[0], split="test").parse_args(argv)
    try:
        samples = open_split(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.max_images:
        samples = samples.subset(range(min(args.max_images, len(samples))))
    rows = []
    for path in args.checkpoints:
        try:
            model, cfg, state = load_checked(path, samples)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        size = cfg["input_size"]
        scorers = {k: LocalizationScorer("wsoleval", size, np.arange(0, 1, 0.01), (50,), with_classification=False)
                   for k in PASSES}
        maps = {k: [] for k in PASSES}
        gt = []
        for batch, logits, own, mirrored in image_and_mirror_maps(model, samples, size):
            y = batch["label"]
            for k, cams in zip(PASSES, (own, mirrored, (own + mirrored) / 2)):
                got = scorers[k].add(logits.numpy(), cams.numpy(), y.numpy(), batch["boxes"])
                maps[k] += [m.astype(np.float16) for m in got]  # 1,389 maps x 3 in float32 would be 0.8 GB
            # the first box: CUB has one per image
            gt += [np.asarray(b, float).reshape(-1, 4)[0] for b in batch["boxes"]]
        row = {"checkpoint": str(path), **checkpoint_provenance(path, state), "method": cfg.get("method", "cam"),
               "backbone": cfg["backbone"], "num_images": len(gt)}
        for k in PASSES:
            metrics = scorers[k].compute()
            tau = metrics["gt_known_threshold"]
            boxes = np.stack([box_from_scoremap(m.astype(np.float32), tau) for m in maps[k]])
            row[k] = {"gt_known_loc": metrics["gt_known_loc"], "gt_known_threshold": tau,
                      "edge_offset_px": edge_offsets(boxes, gt)}
        cx_own, cx_mirror = row["image"]["edge_offset_px"]["centre_x"], row["mirror"]["edge_offset_px"]["centre_x"]
        row["model_x_bias_px"] = (cx_own - cx_mirror) / 2
        row["data_x_bias_px"] = (cx_own + cx_mirror) / 2
        rows.append(row)
        print(f"{path}: GT-known {row['image']['gt_known_loc']:.2f} / mirror {row['mirror']['gt_known_loc']:.2f} / "
              f"flip average {row['flip_average']['gt_known_loc']:.2f}; box centre x offset {cx_own:+.2f} px "
              f"(mirror {cx_mirror:+.2f}): model {row['model_x_bias_px']:+.2f}, data {row['data_x_bias_px']:+.2f}; "
              f"y offset {row['image']['edge_offset_px']['centre_y']:+.2f}", file=sys.stderr)
    atomic_write_json(args.output, {
        "kind": "box_offsets", "dataset": Path(args.data_root).name,  # as evaluate names it
        "split": args.split, "protocol": "wsoleval (largest contour, GT-known best threshold of each map)",
        "records": rows, "command": command_line("benchmarks.box_offsets", argv), "commit": git_commit(),
        "machine": machine_info()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
