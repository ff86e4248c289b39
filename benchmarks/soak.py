"""Soak run: N frames through the threaded runtime pipeline, sampling resident memory, to show it
holds flat. ``python -m benchmarks.soak --model M.onnx --images DIR --frames 10000 --output R.json``"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from wsol_edge.argtypes import non_negative_float, output_file, positive_int


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    import cv2

    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.export.calibration import list_images
    from wsol_edge.imageio import read_image_rgb
    from wsol_edge.runinfo import command_line, git_commit, machine_info
    from wsol_edge.runtime import Localizer
    from wsol_edge.runtime.pipeline import Pipeline
    from wsol_edge.runtime.sources import Frame

    from .cli import readable_images

    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--frames", type=positive_int, default=10000)
    p.add_argument("--batch", type=positive_int, default=8)
    p.add_argument("--sample-every", type=positive_int, default=500)
    p.add_argument("--max-growth-mb", type=non_negative_float, default=50.0, help="allowed RSS growth after warm-up")
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)
    warm_from = min(2000, args.frames // 5)
    if sum(f >= warm_from for f in range(args.sample_every, args.frames + 1, args.sample_every)) < 2:
        # growth needs two samples after the warm-up; with fewer it was NaN, reported as a leak
        p.error(f"--frames {args.frames} with --sample-every {args.sample_every}: fewer than two memory samples after "
                f"the warm-up ({warm_from} frames); give more frames or a smaller --sample-every")

    rgb_images = readable_images(list_images(args.images, "image folder")[:32], read_image_rgb)  # bad ones said
    images = [cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) for rgb in rgb_images]
    loc = Localizer(args.model)

    def frames():
        for i in range(args.frames):
            yield Frame("soak", i, time.time(), image=images[i % len(images)])

    samples, done = [], [0]

    def on_result(frame, r):
        done[0] += 1
        if done[0] % args.sample_every == 0:
            samples.append({"frames": done[0], "rss_mb": round(rss_mb(), 1)})
            print(f"{done[0]} frames, RSS {samples[-1]['rss_mb']} MB", file=sys.stderr)

    t0 = time.time()
    stats = Pipeline(loc, frames(), live=False, batch=args.batch).run(on_result, lambda f: None)
    elapsed = time.time() - t0
    warm = [s["rss_mb"] for s in samples if s["frames"] >= warm_from]
    growth = (max(warm) - warm[0]) if warm else float("nan")
    ok = bool(warm) and growth <= args.max_growth_mb and stats.frames == args.frames
    record = {"kind": "soak", "model_file": Path(args.model).name, "frames": stats.frames, "errors": stats.errors,
              "seconds": elapsed, "rss_samples": samples, "rss_growth_after_warmup_mb": growth,
              "max_growth_mb": args.max_growth_mb, "flat": ok, "batch": args.batch,
              "command": command_line("benchmarks.soak", argv), "commit": git_commit(), "machine": machine_info()}
    atomic_write_json(args.output, record)
    print(f"{stats.frames} frames in {elapsed:.0f}s; RSS growth after warm-up {growth:.1f} MB -> "
          f"{'flat' if ok else 'NOT flat'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
