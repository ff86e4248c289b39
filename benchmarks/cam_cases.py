"""Test CAMs for the box kernels' parity suite and benchmark: random raw CAMs at the backbones' map
sizes, and adversarial patterns at full resolution, where connected-component labelling goes
wrong first (8-connected checkerboards, one-pixel blobs, long spirals that chain thousands of
unions, equal-area ties, rings against blobs, constant and non-finite maps, huge and tiny values).

A CAM at the evaluation size passes the bicubic stage unchanged (cv2.resize to its own size is a
copy, and the kernel's cubic weights at zero offset are 0, 1, 0, 0), so full-resolution patterns
reach the thresholding and labelling stages exactly as drawn.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from wsol_edge.argtypes import output_file


def spiral(size: int, gap: int = 2) -> np.ndarray:
    """A one-pixel-wide square spiral from the top-left corner inwards, arms ``gap`` pixels apart:
    one component whose pixels are connected only in a chain (the worst case for union-find)."""
    m = np.zeros((size, size), np.float32)
    y = x = 0
    m[0, 0] = 1.0
    steps = [size - 1] * 3 + [size - 1 - k * gap for k in range(1, size) for _ in (0, 1)]
    for arm, length in enumerate(steps):
        if length <= 0:
            break
        dy, dx = ((0, 1), (1, 0), (0, -1), (-1, 0))[arm % 4]
        for _ in range(length):
            y, x = y + dy, x + dx
            m[y, x] = 1.0
    return m


def adversarial_cams(size: int = 224, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(name, map [size, size] float32) pairs; ``size`` >= 32."""
    if size < 32:
        raise ValueError(f"adversarial cases need size >= 32, got {size}")
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size))
    cases = [
        ("checkerboard_1px", ((yy + xx) % 2).astype(np.float32)),      # one 8-connected component
        ("checkerboard_3px", (((yy // 3) + (xx // 3)) % 2).astype(np.float32)),
        ("diagonal_stripes", (((yy + xx) // 2) % 3 == 0).astype(np.float32)),
        ("horizontal_stripes", (yy % 2 == 0).astype(np.float32)),       # size/2 equal-area components
        ("spiral", spiral(size)),
        ("spiral_gap4", spiral(size, 4)),
        ("concentric_rings", ((np.hypot(yy - size / 2, xx - size / 2).astype(int) // 3) % 2).astype(np.float32)),
        ("ramp_x", (xx / (size - 1)).astype(np.float32)),
        ("ramp_diagonal", ((xx + yy) / (2 * size - 2)).astype(np.float32)),
        ("radial", np.exp(-((yy - size * 0.3) ** 2 + (xx - size * 0.6) ** 2) / (2 * (size / 6) ** 2)).astype(np.float32)),
        ("all_zero", np.zeros((size, size), np.float32)),
        ("all_equal", np.full((size, size), 3.0, np.float32)),
        ("negative_constant", np.full((size, size), -7.5, np.float32)),
        ("huge_values", (rng.random((size, size)) * 1e30).astype(np.float32)),
        ("tiny_values", (rng.random((size, size)) * 1e-38).astype(np.float32)),   # subnormal range
        ("uniform_noise", rng.random((size, size)).astype(np.float32)),
    ]
    one_px = np.zeros((size, size), np.float32)
    idx = rng.choice(size * size, size=size, replace=False)
    one_px.flat[idx] = rng.random(size).astype(np.float32) + 0.5
    cases.append(("one_pixel_blobs", one_px))
    single = np.zeros((size, size), np.float32)
    single[size - 1, size - 1] = 1.0                                   # at the clipped corner
    cases.append(("one_pixel_corner", single))
    ties = np.zeros((size, size), np.float32)
    ties[size // 2:size // 2 + 5, 10:15] = ties[5:10, size - 20:size - 15] = 1.0   # equal areas
    cases.append(("equal_area_tie", ties))
    ring = np.zeros((size, size), np.float32)
    a, b, k = size // 20, size // 2, int(2 * size ** 0.5)
    ring[a, a:b] = ring[b - 1, a:b] = ring[a:b, a] = ring[a:b, b - 1] = 1.0
    ring[size - k - 2:size - 2, size - k - 2:size - 2] = 1.0            # more pixels, smaller polygon
    cases.append(("ring_vs_blob", ring))
    comb = np.zeros((size, size), np.float32)
    comb[: size - 1, ::2] = 1.0
    comb[size - 1, :] = 1.0                                            # teeth joined only at the last row
    cases.append(("comb", comb))
    for name, value in (("one_nan", np.nan), ("one_inf", np.inf), ("one_minus_inf", -np.inf)):
        m = rng.random((size, size)).astype(np.float32)
        m[size // 3, size // 4] = value
        cases.append((name, m))
    return cases


def random_cams(n: int, hw: int, seed: int = 0) -> np.ndarray:
    """Raw CAMs [n, hw, hw] float32: half white noise, half smooth (a few Gaussian bumps), as CAMs
    of trained and untrained models look."""
    rng = np.random.default_rng(seed)
    out = rng.normal(size=(n, hw, hw)).astype(np.float32)
    yy, xx = np.indices((hw, hw))
    for i in range(n // 2):
        m = np.zeros((hw, hw), np.float32)
        for _ in range(rng.integers(1, 4)):
            cy, cx, s = rng.uniform(0, hw), rng.uniform(0, hw), rng.uniform(0.5, hw / 2)
            m += rng.uniform(0.2, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        out[i] = m - rng.uniform(0, 1)
    return out


@contextmanager
def opencv_without_ipp():
    """OpenCV's own resize code instead of Intel IPP's, whose bicubic rounds the last bit of about
    half the pixels differently; the kernels follow OpenCV's own float steps."""
    import cv2

    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        cv2.ipp.setUseIPP(was)


def reference_boxes(cams: np.ndarray, thresholds, size: int = 224) -> np.ndarray:
    """The kernels' rule on the CPU (wsol_edge.postprocess.largest_component_box, OpenCV's resize
    without IPP): [B, T, 4] int32."""
    from wsol_edge.postprocess import cam_to_scoremap, largest_component_box

    out = np.zeros((len(cams), len(thresholds), 4), np.int32)
    with opencv_without_ipp():
        for b, cam in enumerate(cams):
            sm = cam_to_scoremap(cam, size)
            for t, tau in enumerate(thresholds):
                out[b, t] = largest_component_box(sm, float(tau))
    return out


def main(argv: list[str] | None = None) -> int:
    """Save a model's raw top-1 CAMs on a dataset, for the GPU parity suite on a machine without
    the data (``WSOL_EDGE_REAL_CAMS=FILE``)."""
    import argparse
    import sys

    from wsol_edge.atomic import atomic_write_bytes
    from wsol_edge.backends import load_backend
    from wsol_edge.data import DATASET_KINDS, open_dataset
    from wsol_edge.evaluation import iter_batches

    p = argparse.ArgumentParser(prog="python -m benchmarks.cam_cases", description=main.__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", choices=DATASET_KINDS, default="cub")
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--output", type=output_file, required=True, help=".npz with cams [N, h, w] float32 and image_ids")
    args = p.parse_args(argv)
    backend = load_backend(args.model)
    meta = backend.meta
    samples = open_dataset(args.dataset, args.data_root, args.split)
    cams, ids = [], []
    for images, *_, indices, _ in iter_batches(samples, int(meta["input_size"]), meta["mean"], meta["std"], 16):
        cams.append(backend.infer(images)["cams"].astype(np.float32))
        ids += [samples[i].image_id for i in indices]
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, cams=np.concatenate(cams), image_ids=np.array(ids), model=args.model)
    atomic_write_bytes(args.output, buf.getvalue())
    print(f"{len(ids)} CAMs of {args.model} -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
