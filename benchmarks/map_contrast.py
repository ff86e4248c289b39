"""Does a model's GT-class map light up the object or its surroundings? Mean normalised score inside
the ground-truth boxes against outside them, per checkpoint, on the first images of a split
(a ratio below 1 means an inverted map: background hotter than the object). Also the raw map's
range (median per-image max and min before normalisation) and, for Where-to-Look checkpoints,
how well its two training branches agree: median cosine of the GT-class maps of X and X~ under
one complementary hiding draw (the quantity L_fuse drives to 1).
``python -m benchmarks.map_contrast --checkpoints runs/methods/main/cam/checkpoint.pt runs/methods/main/wtl/checkpoint.pt --data-root ../shared/data/cub50 --output benchmarks/results/cub50_map_contrast.json``"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from wsol_edge.argtypes import output_file


def inside_outside(scoremap: np.ndarray, boxes: np.ndarray) -> tuple[float, float]:
    """Mean of the map inside the union of the (inclusive, pixel) boxes and outside it."""
    inside = np.zeros(scoremap.shape, bool)
    for x0, y0, x1, y1 in np.asarray(boxes, int).reshape(-1, 4):
        inside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
    outside = ~inside
    return float(scoremap[inside].mean()) if inside.any() else float("nan"), \
        float(scoremap[outside].mean()) if outside.any() else float("nan")


def branch_cosines(wrapper, images, labels, generator) -> np.ndarray:
    """Per image cos(A_x, A_x~) of a WhereToLook wrapper's two branches (eval-mode BN)."""
    import torch.nn.functional as F

    _, _, cam_x, cam_xt = wrapper.branches(images, labels, generator)
    return (F.normalize(cam_x.flatten(1), dim=1) * F.normalize(cam_xt.flatten(1), dim=1)).sum(1).numpy()


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.utils.data import DataLoader

    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.checkpoint import checkpoint_provenance
    from wsol_edge.data import open_dataset
    from wsol_edge.data.torch_dataset import EvalDataset, collate_skip_bad
    from wsol_edge.modelio import load_wrapper
    from wsol_edge.postprocess import cam_to_scoremap
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.map_contrast", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--data-root", required=True, help="CUB-layout folder")
    p.add_argument("--split", default="test")
    p.add_argument("--max-images", type=int, default=300)
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)

    samples = open_dataset("cub", args.data_root, args.split)
    samples = samples.subset(range(min(args.max_images, len(samples))))
    rows = []
    for path in args.checkpoints:
        wrapper, cfg, state = load_wrapper(path)
        wrapper.eval()
        model = wrapper.inference_model().eval()
        size = cfg["input_size"]
        loader = DataLoader(EvalDataset(samples, model.mean, model.std, size, False), batch_size=32,
                            collate_fn=collate_skip_bad)
        generator = torch.Generator().manual_seed(0)
        ins, outs, highs, lows, cosines = [], [], [], [], []
        with torch.inference_mode():
            for batch, _ in loader:
                _, feats = model(batch["image"])
                cams = model.cams(feats, batch["label"])
                highs += cams.flatten(1).amax(1).tolist()
                lows += cams.flatten(1).amin(1).tolist()
                if cfg.get("method") == "wtl":
                    cosines += branch_cosines(wrapper, batch["image"], batch["label"], generator).tolist()
                for cam, boxes in zip(cams.numpy(), batch["boxes"]):
                    i, o = inside_outside(cam_to_scoremap(cam, size), boxes)
                    ins.append(i)
                    outs.append(o)
        ins_a, outs_a = np.array(ins), np.array(outs)
        row = {**checkpoint_provenance(path, state), "method": cfg.get("method"), "num_images": len(ins),
               "mean_inside": float(np.nanmean(ins_a)), "mean_outside": float(np.nanmean(outs_a)),
               "inside_over_outside": float(np.nanmean(ins_a) / np.nanmean(outs_a)),
               "share_of_images_hotter_outside": float(np.nanmean(ins_a < outs_a) * 100),
               "raw_map_max_median": float(np.median(highs)), "raw_map_min_median": float(np.median(lows)),
               "wtl_branch_cosine_median": float(np.median(cosines)) if cosines else None}
        print({k: v for k, v in row.items() if not isinstance(v, str)}, file=sys.stderr)
        rows.append(row)
    atomic_write_json(args.output, {"kind": "map_contrast", "dataset": samples.name, "split": args.split,
                                    "cam_class": "ground-truth class", "scoremap": "min-max normalised, input frame",
                                    "checkpoints": rows, "command": command_line("benchmarks.map_contrast", argv),
                                    "commit": git_commit(), "machine": machine_info()})
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
