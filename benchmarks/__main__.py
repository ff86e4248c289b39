"""``python -m benchmarks speed|profile|accuracy-plot|overlays ...``: time backends per stage,
profile ONNX Runtime, plot accuracy per precision, tile CAM overlays.

  speed          latency/throughput per stage for backends x precisions x batch sizes -> JSON + CSV + PNG + Markdown
  profile        ONNX Runtime per-operator-type time of one or more .onnx files -> JSON
  accuracy-plot  accuracy records (e.g. the precisions table) -> grouped bar chart PNG
  overlays       one row of CAM overlays per model on the same images -> PNG
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsol_edge.argtypes import non_negative_int, output_file, positive_int


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--models", nargs="+", required=True,
                   help="model files (.pt for PyTorch eager, .onnx for ONNX Runtime, .engine for TensorRT); "
                        "PATH@cuda runs a .pt or .onnx on the GPU, PATH@cuda-fp16 a .pt in FP16")
    s.add_argument("--images", required=True, help="folder of real images (decoded as part of the timing)")
    s.add_argument("--num-images", type=positive_int, default=64)
    s.add_argument("--batch", type=positive_int, nargs="+", default=[1, 8])
    s.add_argument("--warmup", type=non_negative_int, default=5)
    s.add_argument("--repeats", type=positive_int, default=50, help="timed repetitions per round")
    s.add_argument("--rounds", type=positive_int, default=1,
                   help="measure every model x batch this many times, interleaved in time, and pool the samples")
    s.add_argument("--threads", type=positive_int, help="intra-op threads for torch and ONNX Runtime (default: all cores)")
    s.add_argument("--label", default="efficientnet_lite0 cam 224", help="model description recorded")
    s.add_argument("--output", type=output_file, required=True,
                   help="result JSON; CSV/PNG/Markdown are written beside it")
    pr = sub.add_parser("profile")
    pr.add_argument("--onnx", nargs="+", required=True)
    pr.add_argument("--batch", type=positive_int, default=1)
    pr.add_argument("--runs", type=positive_int, default=30)
    pr.add_argument("--threads", type=positive_int)
    pr.add_argument("--output", type=output_file, required=True)
    a = sub.add_parser("accuracy-plot")
    a.add_argument("--input", required=True, help="result JSON of accuracy records")
    a.add_argument("--output", type=output_file, required=True, help="PNG")
    o = sub.add_parser("overlays")
    o.add_argument("--models", nargs="+", required=True, help="one grid row per model file")
    o.add_argument("--images", required=True, help="image folder (a seeded sample of --num-images)")
    o.add_argument("--num-images", type=positive_int, default=6)
    o.add_argument("--threshold", type=float, help="CAM threshold (default: each model's own)")
    o.add_argument("--threads", type=positive_int)
    o.add_argument("--output", type=output_file, required=True, help="PNG")
    return p


def run_speed(args, argv) -> int:
    import os

    from wsol_edge.export.calibration import pick_images

    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.backends import load_backend
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    from .cli import readable_images
    from .jetson import Tegrastats, power_mode
    from .report import markdown_table, plot_latency_vs_batch, speed_rows, write_csv
    from .speed import (checked_bytes, new_run_id, new_samples, parse_model_spec, ratios_to_reference, sample,
                        summarize)

    threads = args.threads or os.cpu_count()
    files = pick_images(args.images, args.num_images, for_int8=False)
    run_id = new_run_id()
    jetson_mode = power_mode()
    backends = []
    for spec in args.models:
        model, kwargs = parse_model_spec(spec)
        if model.endswith((".pt", ".pth")):
            import torch

            torch.set_num_threads(threads)
        backends.append(load_backend(model, threads=threads, **kwargs) if model.endswith(".onnx")
                        else load_backend(model, **kwargs))
    blobs = readable_images(files, checked_bytes)  # an unreadable image would end the timing part-way
    pooled = {(i, b): new_samples(b) for i in range(len(backends)) for b in args.batch}
    tegra_lines = {key: [] for key in pooled}
    for _ in range(args.rounds):
        for key, samples in pooled.items():
            with Tegrastats() as tegra:
                sample(backends[key[0]], blobs, samples, warmup=args.warmup, repeats=args.repeats)
            tegra_lines[key] += tegra.lines
    records = []
    for (i, b), samples in pooled.items():
        res = summarize(backends[i], samples)
        print(f"{res.backend:12s} {res.precision:5s} batch {b:3d}: {res.images_per_s:8.1f} img/s  "
              f"median {res.latency_ms['median']:.2f} ms  stages/img " +
              " ".join(f"{k}={v:.2f}" for k, v in res.stages_ms.items()), file=sys.stderr)
        records.append({"kind": "speed", "model": args.label, "model_file": Path(args.models[i]).name,
                        "backend": res.backend, "precision": res.precision, "device": res.device, "batch": b,
                        "images_per_s": res.images_per_s, "latency_ms": res.latency_ms, "stages_ms": res.stages_ms,
                        "repeats": res.repeats, "rounds": args.rounds,
                        "round_images_per_s": samples.round_images_per_s, "warmup": args.warmup,
                        "threads": threads, "run_id": run_id,
                        "jetson": ({"power_mode": jetson_mode, "tegrastats": tegra_lines[(i, b)]}
                                   if (jetson_mode or tegra_lines[(i, b)]) else None),
                        "command": command_line("benchmarks", argv), "commit": git_commit(),
                        "machine": machine_info()})
    for backend in backends:
        backend.close()
    out = Path(args.output)
    rows = speed_rows(records)
    summary = markdown_table(rows)
    ratios = ratios_to_reference(records)
    for r in ratios:
        rounds = r["ratio_per_round"]
        spread = f" (rounds {min(rounds):.2f}-{max(rounds):.2f})" if rounds else ""
        print(f"{r['model_file']} batch {r['batch']}: {r['ratio']:.2f}x {r['over']}{spread}", file=sys.stderr)
    atomic_write_json(out, {"records": records, "ratios": ratios, "table_markdown": summary})
    write_csv(out.with_suffix(".csv"), rows)
    plot_latency_vs_batch(out.with_suffix(".png"), rows)
    print(summary)
    return 0


def run_profile(args, argv) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    from .ort_profile import profile_onnx

    results = [profile_onnx(p, args.batch, args.runs, args.threads) for p in args.onnx]
    for r in results:
        top = ", ".join(f"{k} {v:.2f}ms" for k, v in list(r["by_op_type_ms"].items())[:6])
        print(f"{r['model']}: {r['total_ms_per_run']:.2f} ms/run in kernels; {top}", file=sys.stderr)
    atomic_write_json(args.output, {"kind": "ort_profile", "profiles": results, "command": command_line("benchmarks", argv),
                                    "commit": git_commit(), "machine": machine_info()})
    return 0


def run_accuracy_plot(args, argv) -> int:
    import json

    from .report import plot_accuracy_vs_precision

    try:
        data = json.loads(Path(args.input).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{args.input}: not a JSON result file ({exc})") from None
    plot_accuracy_vs_precision(args.output, data["records"] if isinstance(data, dict) and "records" in data else
                               data if isinstance(data, list) else [data])
    print(f"wrote {args.output}")
    return 0


def run_overlays(args, argv) -> int:
    from wsol_edge.export.calibration import pick_images

    from wsol_edge.overlays import write_png

    from .overlay_grid import overlay_grid, read_frames

    frames = read_frames(pick_images(args.images, args.num_images, for_int8=False))
    grid = overlay_grid(args.models, frames, threads=args.threads, threshold=args.threshold)
    write_png(args.output, grid)
    print(f"wrote {args.output} ({len(args.models)} rows x {len(frames)} images)")
    return 0


COMMANDS = {"speed": run_speed, "profile": run_profile, "accuracy-plot": run_accuracy_plot, "overlays": run_overlays}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args, argv)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
