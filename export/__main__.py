"""``python -m wsol_edge.export FORMAT ...``: one table of formats, one command each.

  onnx        checkpoint -> .onnx (CAM head in the graph, metadata, simplified, checked)
  fp16        .onnx -> FP16 .onnx
  int8        .onnx -> INT8 Q/DQ .onnx (calibrated on real images)
  engine      .onnx -> TensorRT engine (+ metadata sidecar)
  triton      .onnx or engine -> Triton Inference Server model repository (config.pbtxt, labels, metadata)
  deepstream  .onnx or engine -> DeepStream Gst-nvinfer config (raw outputs as tensor meta)
  parity      ONNX Runtime vs PyTorch on real images
  regression  PyTorch FP32 vs ORT FP32/FP16/INT8 accuracy table (exports what it needs)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wsol_edge.argtypes import TTA_MODES, non_negative_int, output_file, positive_int, unit_fraction

FORMATS = {
    "onnx": "checkpoint -> ONNX FP32",
    "fp16": "ONNX -> ONNX FP16",
    "int8": "ONNX -> ONNX INT8 (Q/DQ)",
    "engine": "ONNX -> TensorRT engine",
    "triton": "ONNX/engine -> Triton model repository",
    "deepstream": "ONNX/engine -> DeepStream nvinfer config",
    "parity": "ONNX Runtime vs PyTorch on real images",
    "regression": "accuracy across precisions",
}


def add_dataset_args(p, prefix: str = "", split: str = "test", required: bool = True):
    from wsol_edge.data import DATASET_KINDS

    p.add_argument(f"--{prefix}dataset", choices=DATASET_KINDS, default="cub")
    p.add_argument(f"--{prefix}data-root", required=required)
    p.add_argument(f"--{prefix}metadata-root")
    p.add_argument(f"--{prefix}split", default=split)


def open_split(args, prefix: str = "", class_names: list[str] | None = None):
    """The split the ``prefix`` flags name; ``class_names`` (the checkpoint's) index a voc or csv split's labels."""
    from wsol_edge.data import open_dataset

    get = lambda k: getattr(args, (prefix + k).replace("-", "_"))  # noqa: E731
    return open_dataset(get("dataset"), get("data_root"), get("split"), metadata_root=get("metadata_root"),
                        class_names=class_names)


def checkpoint_classes(path) -> list[str] | None:
    """The class names a checkpoint was trained on (None for one that did not record them)."""
    from wsol_edge.checkpoint import load_checkpoint

    return (load_checkpoint(path).get("model_config") or {}).get("class_names")


def calibration_source(args):
    if args.calibration_dir:
        return args.calibration_dir
    if args.calib_data_root:
        samples = open_split(args, "calib_")
        return [Path(s.path) for s in samples if s.path]
    raise ValueError("INT8 needs calibration images: --calibration-dir DIR or --calib-data-root (a dataset's train split)")


def add_ivr_arg(p) -> None:
    p.add_argument("--ivr-percentile", type=unit_fraction, metavar="P",
                   help="serve IVR score maps (as evaluate --ivr-percentile; 0.6 in Kim et al. 2021) instead of "
                        "min-max: recorded in the metadata, which every runtime follows; the threshold is then "
                        "given or chosen on them (--cam-threshold or --threshold-*/--calib-*, never the checkpoint's)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wsol_edge.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="format", required=True, metavar="FORMAT")

    o = sub.add_parser("onnx", help=FORMATS["onnx"])
    o.add_argument("--checkpoint", required=True)
    o.add_argument("--output", type=output_file, required=True)
    o.add_argument("--cam-threshold", type=float,
                   help="fixed CAM threshold (else chosen on --threshold-data-root's boxed images, else the checkpoint's)")
    add_dataset_args(o, "threshold-", split="train", required=False)
    o.add_argument("--threshold-images", type=positive_int, default=200)
    o.add_argument("--with-all-cams", action="store_true", help="add cams_all[B,K,h,w] (for evaluation)")
    o.add_argument("--input-size", type=positive_int,
                   help="the image size served (default: the trained size; another one only with the trained size "
                        "among --tta-sizes, the image resized to it inside the graph)")
    o.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="flip: test-time augmentation in the graph (the mirror is a second pass, averaged; "
                        "twice the compute)")
    o.add_argument("--tta-sizes", type=positive_int, nargs="+", metavar="PX",
                   help="test-time input sizes in the graph (e.g. 224 288: the image also resized to 288, logits "
                        "and maps averaged on the finest grid; multiples of the model's stride)")
    add_ivr_arg(o)

    f = sub.add_parser("fp16", help=FORMATS["fp16"])
    f.add_argument("--onnx", required=True)
    f.add_argument("--output", type=output_file, required=True)

    for name in ("int8", "regression"):
        q = sub.add_parser(name, help=FORMATS[name])
        if name == "int8":
            q.add_argument("--onnx", required=True)
            q.add_argument("--output", type=output_file, required=True)
        q.add_argument("--calibration-dir", help="folder of real images (recursive)")
        add_dataset_args(q, "calib-", split="train", required=False)
        q.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="entropy")
        q.add_argument("--num-images", type=positive_int, default=512)
        q.add_argument("--cache-dir")
        q.add_argument("--quantize-head", action="store_true", help="also quantize the CAM head and classifier")
        q.add_argument("--activation-type", choices=("int8", "uint8"), default="int8",
                       help="int8: symmetric, what TensorRT wants; uint8: asymmetric, ORT's fast path on x86 CPUs")
        q.add_argument("--reduce-range", action="store_true",
                       help="7-bit weights (ORT's advice for x86 CPUs without VNNI, to avoid int16 saturation)")
        q.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weight scales")
    r = sub.choices["regression"]
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--workdir", required=True, help="where the exported models are written")
    add_dataset_args(r)
    r.add_argument("--threshold-images", type=positive_int, default=200)
    r.add_argument("--cam-threshold", type=float,
                   help="fixed CAM threshold (else chosen on --threshold-images images of the calibration split, "
                        "else the checkpoint's)")
    r.add_argument("--max-images", type=positive_int)
    r.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="flip: every model with flip test-time augmentation (in the exported graphs)")
    add_ivr_arg(r)
    r.add_argument("--output", type=output_file, help="result JSON (records for each backend/precision)")

    e = sub.add_parser("engine", help=FORMATS["engine"])
    e.add_argument("--onnx", required=True)
    e.add_argument("--output", type=output_file, required=True)
    e.add_argument("--fp16", action="store_true")
    e.add_argument("--int8", action="store_true", help="strongly typed network from the Q/DQ graph")
    e.add_argument("--min-batch", type=positive_int, default=1)
    e.add_argument("--opt-batch", type=positive_int, default=8)
    e.add_argument("--max-batch", type=positive_int, default=32)
    e.add_argument("--workspace-mb", type=positive_int, default=1024)
    e.add_argument("--timing-cache", type=output_file,
                   help="timing cache file (read if present, written after the build)")
    e.add_argument("--dla-core", type=non_negative_int, help="Jetson DLA core (0/1), with GPU fallback")
    e.add_argument("--no-gpu-fallback", action="store_true")
    e.add_argument("--hardware-compat", choices=("none", "ampere_plus", "same_compute_capability"), default="none")
    e.add_argument("--version-compat", action="store_true")

    t = sub.add_parser("triton", help=FORMATS["triton"])
    t.add_argument("--model", required=True, help="an exported .onnx, or an engine built by export engine")
    t.add_argument("--repository", required=True, help="the model repository (tritonserver --model-repository)")
    t.add_argument("--name", help="the model's name in the repository (default: the model file's stem)")
    t.add_argument("--version", type=positive_int, default=1)
    t.add_argument("--max-batch", type=positive_int, help="largest batch Triton forms (default: 8, or the "
                                                              "engine's profile maximum)")
    t.add_argument("--instances", type=positive_int, default=1, help="model instances (instance_group count)")
    t.add_argument("--kind", choices=("gpu", "cpu"), default="gpu", help="where the instances run")
    t.add_argument("--max-queue-delay-us", type=non_negative_int, default=100,
                   help="how long the dynamic batcher waits to fill a batch")

    d = sub.add_parser("deepstream", help=FORMATS["deepstream"])
    d.add_argument("--model", required=True, help="an exported .onnx (nvinfer builds its engine), or an engine")
    d.add_argument("--output", type=output_file, required=True, help="the Gst-nvinfer config file to write")
    d.add_argument("--batch-size", type=positive_int, default=1, help="frames per batch (nvstreammux's batch-size)")
    d.add_argument("--gpu-id", type=non_negative_int, default=0)

    pa = sub.add_parser("parity", help=FORMATS["parity"])
    pa.add_argument("--checkpoint", required=True)
    pa.add_argument("--onnx", required=True)
    add_dataset_args(pa)
    pa.add_argument("--max-images", type=positive_int)
    pa.add_argument("--min-identical-boxes", type=float, default=99.5)
    pa.add_argument("--output", type=output_file)
    return p


def run(args, argv) -> int:
    from wsol_edge.atomic import atomic_write_json, writable_folder
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    command = command_line("wsol_edge.export", argv)
    # the regression's folder checked before its exports (--output is checked as the flags are read, by
    # argtypes.output_file)
    if getattr(args, "workdir", None):
        writable_folder(args.workdir, create=False)
    if args.format == "onnx":
        from .from_checkpoint import export_checkpoint

        samples = (open_split(args, "threshold_", checkpoint_classes(args.checkpoint))
                   if args.threshold_data_root and args.cam_threshold is None else None)
        export_checkpoint(args.checkpoint, args.output, threshold=args.cam_threshold, threshold_samples=samples,
                          threshold_images=args.threshold_images, with_all_cams=args.with_all_cams,
                          input_size=args.input_size, tta=args.tta,
                          tta_sizes=args.tta_sizes, ivr_percentile=args.ivr_percentile)
    elif args.format == "fp16":
        from .quantize import to_fp16

        to_fp16(args.onnx, args.output)
        print(f"wrote {args.output}")
    elif args.format == "int8":
        from .quantize import to_int8

        to_int8(args.onnx, args.output, calibration_source(args), method=args.method, num_images=args.num_images,
                cache_dir=args.cache_dir, keep_head_fp32=not args.quantize_head, activation_type=args.activation_type,
                reduce_range=args.reduce_range, per_channel=not args.per_tensor)
        print(f"wrote {args.output}")
    elif args.format == "engine":
        from .tensorrt_engine import EngineOptions, build_engine

        build_engine(args.onnx, args.output, EngineOptions(
            fp16=args.fp16, int8=args.int8, min_batch=args.min_batch, opt_batch=args.opt_batch,
            max_batch=args.max_batch, workspace_mb=args.workspace_mb, timing_cache=args.timing_cache,
            dla_core=args.dla_core, gpu_fallback=not args.no_gpu_fallback, hardware_compat=args.hardware_compat,
            version_compat=args.version_compat))
        print(f"wrote {args.output}")
    elif args.format == "triton":
        from .serving import write_triton_repository

        folder = write_triton_repository(args.model, args.repository, name=args.name, version=args.version,
                                         max_batch=args.max_batch, instances=args.instances, kind=args.kind,
                                         queue_delay_us=args.max_queue_delay_us)
        print(f"wrote {folder} (serve it with: tritonserver --model-repository {args.repository})")
    elif args.format == "deepstream":
        from .serving import write_nvinfer_config

        config, folded = write_nvinfer_config(args.model, args.output, batch_size=args.batch_size,
                                              gpu_id=args.gpu_id)
        print(f"wrote {config}" + (f" and {folded} (the model dividing by its per-channel std in the graph, as "
                                    "nvinfer scales every channel alike)" if folded else ""))
    elif args.format == "parity":
        from wsol_edge.backends import load_backend
        from wsol_edge.checkpoint import file_sha256

        from .regression import parity

        samples = open_split(args)
        if args.max_images:
            samples = samples.subset(range(min(args.max_images, len(samples))))
        onnx_backend = load_backend(args.onnx)
        exported_from = onnx_backend.meta.get("source_checkpoint_sha256")
        ours = file_sha256(args.checkpoint) if Path(args.checkpoint).is_file() else exported_from  # else: not found
        if exported_from != ours:  # else numpy's broadcast error, or figures of two unrelated models
            raise ValueError(f"{args.onnx} was exported from another checkpoint (SHA-256 {str(exported_from)[:12]}, "
                             f"{args.checkpoint}'s is {ours[:12]}): parity compares a checkpoint with its own export")
        # the checkpoint served as the graph was exported: with its test-time augmentation, if any
        torch_backend = load_backend(args.checkpoint, tta=onnx_backend.meta.get("tta"),
                                     tta_sizes=onnx_backend.meta.get("tta_sizes"),
                                     input_size=int(onnx_backend.meta["input_size"]))
        res = parity(torch_backend, onnx_backend, samples)
        record = {"kind": "parity", "dataset": Path(args.data_root).name, "split": args.split, **res,
                  "backends": ["pytorch fp32", "onnxruntime fp32"], "command": command, "commit": git_commit(),
                  "machine": machine_info()}
        print(json.dumps({k: v for k, v in record.items() if k not in ("machine",)}, indent=1))
        if args.output:
            atomic_write_json(args.output, record)
        if res["identical_boxes"] < args.min_identical_boxes:
            print(f"error: identical boxes {res['identical_boxes']:.2f}% < {args.min_identical_boxes}%", file=sys.stderr)
            return 1
    elif args.format == "regression":
        run_regression(args, command)
    return 0


def run_regression(args, command: str) -> None:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.backends import load_backend
    from wsol_edge.data import check_classes, require_boxes
    from wsol_edge.runinfo import git_commit, machine_info

    from .from_checkpoint import export_checkpoint
    from .quantize import INT8_FLAVOURS, to_fp16, to_int8
    from .regression import format_table, regression_table

    work = Path(args.workdir)
    classes = checkpoint_classes(args.checkpoint)
    samples = open_split(args, class_names=classes)
    if args.max_images:
        samples = samples.subset(range(min(args.max_images, len(samples))))
    require_boxes(samples)  # before the exports, not after them
    check_classes(samples, classes, str(args.checkpoint))
    calib = calibration_source(args)
    fp32 = work / "model.fp32.onnx"
    threshold_samples = (open_split(args, "calib_", classes)
                         if args.calib_data_root and args.cam_threshold is None else None)
    meta = export_checkpoint(args.checkpoint, fp32, threshold=args.cam_threshold,
                             threshold_samples=threshold_samples, threshold_images=args.threshold_images,
                             with_all_cams=True, tta=args.tta, ivr_percentile=args.ivr_percentile)
    to_fp16(fp32, work / "model.fp16.onnx")
    to_int8(fp32, work / "model.int8.onnx", calib, method=args.method, num_images=args.num_images,
            cache_dir=args.cache_dir, keep_head_fp32=not args.quantize_head, activation_type=args.activation_type,
            reduce_range=args.reduce_range, per_channel=not args.per_tensor)
    # ONNX Runtime's two x86 CPU flavours of INT8 too (INT8_FLAVOURS)
    for name, flavour in (("int8u8", "u8s8_reduce_range"), ("int8u8w8", "u8s8")):
        activation_type, reduce_range = INT8_FLAVOURS[flavour]
        to_int8(fp32, work / f"model.{name}.onnx", calib, method=args.method, num_images=args.num_images,
                cache_dir=args.cache_dir, keep_head_fp32=not args.quantize_head, activation_type=activation_type,
                reduce_range=reduce_range, per_channel=not args.per_tensor)
    backends = [load_backend(args.checkpoint, all_cams=True, tta=args.tta)] + [
        load_backend(work / f"model.{p}.onnx") for p in ("fp32", "fp16", "int8", "int8u8", "int8u8w8")]
    # every backend scored on the maps the exported models serve, at the threshold they carry
    rows = regression_table(backends, samples, ivr_percentile=meta["ivr_percentile"],
                            deployed_threshold=meta["cam_threshold"])
    table = format_table(rows)
    print(table)
    records = []
    for r in rows:
        records.append({"kind": "accuracy", "dataset": Path(args.data_root).name, "split": args.split,
                        "num_images": len(samples), "method": meta["method"], "backbone": meta["backbone"],
                        "backend": r["backend"], "precision": r["precision"], "variant": r["variant"],
                        "protocol": "wsoleval", "tta": args.tta,
                        "scoremap_normalization": meta["scoremap_normalization"],
                        "ivr_percentile": meta["ivr_percentile"],
                        "input_size": int(meta["input_size"]), "metrics": r["metrics"],
                        "box_comparison": r["box_comparison"], "eval_seconds": r["eval_seconds"],
                        "int8": {"calibration_method": args.method, "calibration_images": args.num_images,
                                 "head_fp32": not args.quantize_head, "per_channel": not args.per_tensor},
                        "deployed_threshold": {**r["deployed_threshold"], "source": meta["cam_threshold_source"]},
                        "train_seconds": None,
                        "command": command, "commit": git_commit(), "machine": machine_info()})
    if args.output:
        atomic_write_json(args.output, {"records": records, "table_markdown": table})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from wsol_edge.backends import BackendError
    from wsol_edge.export_metadata import MetadataError

    try:
        return run(args, argv)
    except ModuleNotFoundError as exc:
        # the base install has the runtime alone; TensorRT and cuda-python say their own install line
        print(f"error: {exc} (the export tools come with the [train] extra: pip install \"wsol_edge[train]\")",
              file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, BackendError, MetadataError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
