"""Which INT8 setting costs a model its accuracy on ONNX Runtime's CPU? First written for one question:
is the loss int16 saturation (x86 without VNNI multiplies u8 x s8 pairs into saturating int16; 7-bit
weights, ``reduce_range``, cannot saturate)? On a CPU with VNNI (int32 accumulation, no saturation) it
also says what the 7-bit weights of the CPU flavour cost by themselves (``u8s8`` against ``u8s8_reduce_range``).

Quantizes one FP32 model in each flavour asked for, with the same calibration (one method, the same
train images), and scores each on the same test images. The default is the saturation probe:
``python -m benchmarks.int8_saturation --onnx runs/cub50_export/model.fp32.onnx --data-root ../shared/data/cub50
--max-images 400 --output benchmarks/results/cub50_int8_saturation.json``; the settings of ``wsol_edge.export
regression`` are ``--method entropy --calibration-images 512 --max-images 1389``."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from wsol_edge.argtypes import output_file

SATURATION_PROBE = ("s8s8", "s8s8_reduce_range", "u8s8_reduce_range")


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.backends import load_backend
    from wsol_edge.data import read_cub
    from wsol_edge.evaluation import evaluate_backend
    from wsol_edge.export.quantize import CALIBRATION_METHODS, INT8_FLAVOURS, to_int8
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.int8_saturation", description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", required=True, help="FP32 model exported with --with-all-cams")
    p.add_argument("--data-root", required=True, help="CUB-layout folder: train split calibrates, test split scores")
    p.add_argument("--max-images", type=int, default=400)
    p.add_argument("--calibration-images", type=int, default=128)
    p.add_argument("--method", choices=CALIBRATION_METHODS, default="minmax", help="calibration method (default: minmax)")
    p.add_argument("--flavours", nargs="+", choices=tuple(INT8_FLAVOURS), default=SATURATION_PROBE,
                   help=f"INT8 flavours to score (default: {' '.join(SATURATION_PROBE)})")
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)
    train = [Path(s.path) for s in read_cub(args.data_root, "train")]
    test = read_cub(args.data_root, "test")
    test = test.subset(range(min(args.max_images, len(test))))
    keys = ("top1_cls", "gt_known_loc", "max_box_acc_v2")
    results = {"fp32": {k: evaluate_backend(load_backend(args.onnx), test)[0][k] for k in keys}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.flavours:
            act, rr = INT8_FLAVOURS[name]
            q = Path(tmp) / f"{name}.onnx"
            to_int8(args.onnx, q, train, method=args.method, num_images=args.calibration_images,
                    cache_dir=Path(tmp) / "cache", activation_type=act, reduce_range=rr)
            results[name] = {k: evaluate_backend(load_backend(q), test)[0][k] for k in keys}
            print(name, results[name], file=sys.stderr)
    atomic_write_json(args.output, {"kind": "int8_saturation_probe", "dataset": test.name, "num_images": len(test),
                                    "calibration": f"{args.method}, {args.calibration_images} train images", "results": results,
                                    "command": command_line("benchmarks.int8_saturation", argv), "commit": git_commit(),
                                    "machine": machine_info()})
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
