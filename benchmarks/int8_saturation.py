"""Is an INT8 accuracy loss on ONNX Runtime CPU int16 saturation? (x86 without VNNI multiplies
u8 x s8 pairs into saturating int16; 7-bit weights, ``reduce_range``, cannot saturate.)

Quantizes one FP32 model three ways with the same calibration (S8 activations with and without
reduce_range, U8 activations with it) and scores each on the same images.
``python -m benchmarks.int8_saturation --onnx runs/cub50_export/model.fp32.onnx --data-root ../shared/data/cub50
--max-images 400 --output benchmarks/results/cub50_int8_saturation.json``"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.backends import load_backend
    from wsol_edge.data import read_cub
    from wsol_edge.evaluation import evaluate_backend
    from wsol_edge.export.quantize import to_int8
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.int8_saturation", description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", required=True, help="FP32 model exported with --with-all-cams")
    p.add_argument("--data-root", required=True, help="CUB-layout folder: train split calibrates, test split scores")
    p.add_argument("--max-images", type=int, default=400)
    p.add_argument("--calibration-images", type=int, default=128)
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    train = [Path(s.path) for s in read_cub(args.data_root, "train")]
    test = read_cub(args.data_root, "test")
    test = test.subset(range(min(args.max_images, len(test))))
    keys = ("top1_cls", "gt_known_loc", "max_box_acc_v2")
    results = {"fp32": {k: evaluate_backend(load_backend(args.onnx), test)[0][k] for k in keys}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, act, rr in (("s8s8", "int8", False), ("s8s8_reduce_range", "int8", True),
                              ("u8s8_reduce_range", "uint8", True)):
            q = Path(tmp) / f"{name}.onnx"
            to_int8(args.onnx, q, train, method="minmax", num_images=args.calibration_images,
                    cache_dir=Path(tmp) / "cache", activation_type=act, reduce_range=rr)
            results[name] = {k: evaluate_backend(load_backend(q), test)[0][k] for k in keys}
            print(name, results[name], file=sys.stderr)
    atomic_write_json(args.output, {"kind": "int8_saturation_probe", "dataset": test.name, "num_images": len(test),
                                    "calibration": f"minmax, {args.calibration_images} train images", "results": results,
                                    "command": command_line("benchmarks.int8_saturation", argv), "commit": git_commit(),
                                    "machine": machine_info()})
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
