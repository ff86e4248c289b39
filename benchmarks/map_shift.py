"""How far right does a model put its maps? Measured on training images, without boxes.

For each image, the GT-class score map of the image and of its mirror (mirrored back), as the
protocol makes them (min-max, bicubic to the input frame). A model whose maps sit b px right of
the evidence puts the image's map at +b and the mirror's, mirrored back, at -b, whatever the
object, so the column profiles of the two maps (each summed over rows) correlate best at a lag of
2b; the lag is taken from the per-image correlations summed over all images (parabolic peak,
sub-pixel). Nothing in this uses a box, so it can run on the training split and its figure be
given to ``evaluate --map-shift-px`` without looking at the test images
(wsol_edge/models/map_shift.py). The vertical displacement cannot be split from the data this way
(no vertical flips are trained) and is not measured.
``python -m benchmarks.map_shift --checkpoints runs/methods_12ep/main/cam/checkpoint.pt --data-root ../shared/data/cub50 --output benchmarks/results/cub50_map_shift.json``"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

MAX_LAG_PX = 40


def profile_correlation(own: np.ndarray, mirrored: np.ndarray, max_lag: int = MAX_LAG_PX) -> np.ndarray:
    """Pearson correlation over the overlapping columns of p_own(x) and p_mirror(x + lag), lag =
    -max_lag..max_lag, where p is a map's column sum; ``own``/``mirrored`` (H, W) score maps. Pearson
    over the overlap, not a raw sum: a sum shrinks with the overlap and pulls the peak towards lag 0
    (and a mean over the overlap can move a map's peak with itself away from 0)."""
    p, q = own.sum(0), mirrored.sum(0)
    w = len(p)
    out = np.zeros(2 * max_lag + 1)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        a, b = (p[:w - lag], q[lag:]) if lag >= 0 else (p[-lag:], q[:w + lag])
        a, b = a - a.mean(), b - b.mean()
        norm = np.sqrt(np.dot(a, a) * np.dot(b, b))
        out[i] = float(np.dot(a, b)) / norm if norm > 0 else 0.0  # a flat map says nothing about a shift
    return out


def displacement_px(correlation: np.ndarray, max_lag: int = MAX_LAG_PX) -> float:
    """The model's rightward displacement b from the summed correlation: its peak lies at lag -2b
    (the image's map at +b, the mirror's at -b); a parabola through the peak and its neighbours
    gives the sub-pixel lag. A peak on the edge of the lag range is a ValueError."""
    i = int(np.argmax(correlation))
    if i in (0, len(correlation) - 1):
        raise ValueError(f"the maps' correlation peaks at the edge of +-{max_lag} px: no displacement to measure")
    y0, y1, y2 = correlation[i - 1: i + 2]
    denom = y0 - 2 * y1 + y2
    lag = i - max_lag + (0.5 * (y0 - y2) / denom if denom != 0 else 0.0)
    return -lag / 2


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.checkpoint import checkpoint_provenance
    from wsol_edge.postprocess import cam_to_scoremap
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    from .mirror_pass import build_parser, image_and_mirror_maps, load_checked, open_split

    args = build_parser("python -m benchmarks.map_shift", __doc__.split("\n\n")[0], split="train",
                        split_help="where to measure (no boxes are used)",
                        max_images_help="evenly spaced over the split (default: every image)").parse_args(argv)
    try:
        samples = open_split(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.max_images and args.max_images < len(samples):  # evenly spaced: the split is ordered by class
        samples = samples.subset(np.linspace(0, len(samples) - 1, args.max_images).round().astype(int).tolist())
    rows = []
    for path in args.checkpoints:
        try:
            model, cfg, state = load_checked(path, samples)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        size = cfg["input_size"]
        corr, count = np.zeros(2 * MAX_LAG_PX + 1), 0
        for _, _, own, mirrored in image_and_mirror_maps(model, samples, size):
            for a, b in zip(own.numpy(), mirrored.numpy()):
                corr += profile_correlation(cam_to_scoremap(a, size), cam_to_scoremap(b, size))
                count += 1
        try:
            shift = displacement_px(corr)
        except ValueError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 1
        rows.append({"checkpoint": str(path), **checkpoint_provenance(path, state), "method": cfg.get("method", "cam"),
                     "backbone": cfg["backbone"], "input_size": size, "num_images": count,
                     "map_x_displacement_px": shift})
        print(f"{path}: maps {shift:+.2f} px right of the mirror-consistent position ({count} images of "
              f"{args.split}); evaluate with --map-shift-px {shift:.2f}", file=sys.stderr)
    atomic_write_json(args.output, {
        "kind": "map_shift", "dataset": Path(args.data_root).name, "split": args.split,
        "estimator": "Pearson correlation of the column profiles of each image's GT-class score map and its "
                     f"mirror's (mirrored back) at lags -{MAX_LAG_PX}..{MAX_LAG_PX} px, summed over images; "
                     "displacement = -peak lag/2",
        "records": rows, "command": command_line("benchmarks.map_shift", argv), "commit": git_commit(),
        "machine": machine_info()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
