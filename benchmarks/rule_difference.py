"""How often the GPU kernels' "largest = most pixels" rule gives another box than the wsoleval
"largest = biggest contour polygon area" rule, on real CAMs of a model; and how often OpenCV's
bicubic resize by Intel IPP (its default on x86) gives another box than OpenCV's own resize code,
whose float steps the kernels follow.

``python -m benchmarks.rule_difference --model M.onnx --dataset cub --data-root ../shared/data/cub50
--split test --output R.json`` (CPU only: both rules have a CPU implementation)."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from wsol_edge.argtypes import open_unit_interval, output_file


def main(argv: list[str] | None = None) -> int:
    from benchmarks.cam_cases import opencv_without_ipp
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.backends import load_backend
    from wsol_edge.data import DATASET_KINDS, open_dataset
    from wsol_edge.evaluation import iter_batches
    from wsol_edge.metrics import iou_matrix
    from wsol_edge.postprocess import box_from_scoremap, cam_to_scoremap, largest_component_box
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.rule_difference", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", choices=DATASET_KINDS, default="cub")
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--threshold-step", type=open_unit_interval, default=0.05)
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)
    backend = load_backend(args.model)
    meta = backend.meta
    size, tau0, ivr = int(meta["input_size"]), float(meta["cam_threshold"]), meta.get("ivr_percentile")
    taus = np.arange(0, 1, args.threshold_step)
    samples = open_dataset(args.dataset, args.data_root, args.split)
    differ_at_model_tau = n = 0
    differ_any = np.zeros(len(taus))
    ipp_differ = {"wsoleval": np.zeros(len(taus)), "most_pixels": np.zeros(len(taus))}
    ious = []
    for images, *_ in iter_batches(samples, size, meta["mean"], meta["std"], 16):
        out = backend.infer(images)
        for cam in out["cams"]:
            # normalised as the model serves its maps (min-max, or IVR: export onnx --ivr-percentile)
            sm = cam_to_scoremap(cam, size, ivr_percentile=ivr)
            with opencv_without_ipp():  # the kernels' resize arithmetic (benchmarks/cam_cases.py)
                sm_own = cam_to_scoremap(cam, size, ivr_percentile=ivr)
            a, b = box_from_scoremap(sm, tau0), largest_component_box(sm, tau0)
            differ_at_model_tau += int((a != b).any())
            ious.append(iou_matrix(a[None], b[None])[0, 0])
            for i, t in enumerate(taus):
                differ_any[i] += int((box_from_scoremap(sm, t) != largest_component_box(sm, t)).any())
                ipp_differ["wsoleval"][i] += int((box_from_scoremap(sm, t) != box_from_scoremap(sm_own, t)).any())
                ipp_differ["most_pixels"][i] += int((largest_component_box(sm, t) !=
                                                     largest_component_box(sm_own, t)).any())
            n += 1
    record = {"kind": "box_rule_difference", "dataset": samples.name, "num_images": n, "model_file": args.model,
              "cam": "top-1 class", "model_threshold": tau0, "ivr_percentile": ivr,
              "boxes_differ_at_model_threshold_percent": 100.0 * differ_at_model_tau / n,
              "mean_iou_between_rules_at_model_threshold": float(np.mean(ious)),
              "boxes_differ_percent_by_threshold": {f"{t:.2f}": 100.0 * d / n for t, d in zip(taus, differ_any)},
              # same rule, resize by Intel IPP (OpenCV's default here) vs OpenCV's own code (the kernels' steps)
              "ipp_vs_opencv_resize_boxes_differ_percent": {
                  rule: {"all_thresholds": 100.0 * float(d.sum()) / (n * len(taus)),
                         "by_threshold": {f"{t:.2f}": 100.0 * v / n for t, v in zip(taus, d)}}
                  for rule, d in ipp_differ.items()},
              "command": command_line("benchmarks.rule_difference", argv), "commit": git_commit(),
              "machine": machine_info()}
    atomic_write_json(args.output, record)
    print(f"{n} images: boxes differ at tau={tau0:.2f} on {record['boxes_differ_at_model_threshold_percent']:.2f}% "
          f"(mean IoU between rules {record['mean_iou_between_rules_at_model_threshold']:.4f}); IPP vs OpenCV resize: "
          + ", ".join(f"{rule} {v['all_thresholds']:.3f}%" for rule, v in record["ipp_vs_opencv_resize_boxes_differ_percent"].items()),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
