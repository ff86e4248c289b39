"""Evaluate a trained CAM model (or the untrained ImageNet CAM) on a split, under a protocol.

``python -m wsol_edge.evaluate --checkpoint runs/x/checkpoint.pt --dataset cub --data-root ../shared/data/cub50
--split test --output benchmarks/results/x.json --overlays runs/x/overlays``
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .argtypes import (TTA_MODES, HelpFormatter, non_negative_int, open_unit_interval, output_file, percent,
                       positive_int, unit_fraction)
from .cli_errors import error_line
from .config import parse_args
from .data import DATASET_KINDS
from .torch_device import DEVICE_HELP


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wsol_edge.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--config", help="YAML or JSON file of options; flags override it")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="training checkpoint (.pt)")
    src.add_argument("--imagenet-baseline", action="store_true",
                     help="untrained ImageNet CAM: the CAM of the model's own top-1 ImageNet class")
    p.add_argument("--backbone", default="efficientnet_lite0", help="backbone of --imagenet-baseline")
    p.add_argument("--output-stride", type=int, default=None, help="with --imagenet-baseline")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="test-time augmentation: flip averages the image's and its mirror's logits and maps "
                        "(two forward passes; the checkpoint's own threshold, chosen without it, is not reported)")
    p.add_argument("--tta-sizes", type=positive_int, nargs="+", default=None, metavar="PX",
                   help="test-time input sizes: the image is also run resized to each (e.g. 224 288 336, multiples "
                        "of the model's stride) and the logits and maps averaged on the finest map grid; with "
                        "--tta flip, flipped at every size; the checkpoint's own threshold is not reported")
    p.add_argument("--map-shift-px", type=float, default=0.0, metavar="PX",
                   help="move every map left by PX pixels of the input frame (one pass; the displacement "
                        "python -m benchmarks.map_shift measures on training images); not with --tta flip, "
                        "which cancels it; the checkpoint's own threshold, chosen without it, is not reported")
    p.add_argument("--align-maps", action="store_true",
                   help="move every upsampled map by the model's receptive-field offset, measured on a "
                        "linearised copy (wsol_edge/models/grid_offset.py: +7.5 px right and down for "
                        "EfficientNet-Lite at stride 16; with --tta flip only the vertical part remains); "
                        "the checkpoint's own threshold, chosen without it, is not reported")
    p.add_argument("--ivr-percentile", type=unit_fraction, default=None, metavar="P",
                   help="normalise each upsampled map by inferior value removal (Kim et al., ICCV 2021) instead "
                        "of min-max: subtract its value at percentile P (0.6 in their paper), clip at 0, divide "
                        "by the max; wsoleval only; the checkpoint's own threshold, chosen on min-max maps, is "
                        "not reported")
    p.add_argument("--dataset", choices=DATASET_KINDS, default="cub")
    p.add_argument("--data-root")
    p.add_argument("--metadata-root")
    p.add_argument("--split", default="test")
    p.add_argument("--dataset-name", help="name recorded in the result (default: the data root's folder name)")
    p.add_argument("--synthetic-images", type=positive_int, default=64)
    p.add_argument("--synthetic-classes", type=positive_int, default=4)
    p.add_argument("--synthetic-size", type=positive_int, default=96)
    p.add_argument("--protocol", choices=("wsoleval", "sat"), default="wsoleval")
    p.add_argument("--input-size", type=positive_int, default=None, help="default: the model's")
    p.add_argument("--cam-threshold-step", type=open_unit_interval, default=0.01)
    p.add_argument("--iou-thresholds", type=percent, nargs="+", default=[30, 50, 70],
                   help="IoU thresholds in percent for MaxBoxAcc; MaxBoxAccV2 is their mean (the protocol's: 30 50 70)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--max-images", type=positive_int, default=None)
    p.add_argument("--skip-bad-images", action="store_true")
    p.add_argument("--output", type=output_file, help="result JSON file (written atomically)")
    p.add_argument("--per-image", type=output_file, metavar="NPZ",
                   help="also write the per-image IoU and correctness tables (.npz) behind the metrics, for "
                        "python -m benchmarks.paired_bootstrap")
    p.add_argument("--overlays", help="folder for CAM overlay PNGs")
    p.add_argument("--num-overlays", type=non_negative_int, default=8)
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--device", default="auto", help=DEVICE_HELP + " (boxes are scored on the CPU either way)")
    p.add_argument("--workers", type=non_negative_int, default=0, help="image-decoding worker processes")
    p.add_argument("--no-progress", action="store_true")
    return p


def evaluate(args: argparse.Namespace, argv: list[str] | None = None) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from .atomic import atomic_write_json, writable_folder
    from .checkpoint import checkpoint_provenance
    from .data import check_classes, open_dataset, require_boxes
    from .data.torch_dataset import EvalDataset, collate_skip_bad
    from .evaluation import LocalizationScorer, per_image_info, write_per_image
    from .modelio import load_model
    from .models import imagenet_cam_model
    from .models.grid_offset import receptive_field_offset
    from .models.map_shift import ShiftedMaps
    from .models.tta import augmenting_sizes, with_tta
    from .overlays import cam_overlay, write_png
    from .postprocess import box_from_scoremap
    from .runinfo import command_line, git_commit, machine_info
    from .torch_device import resolve_device

    # the overlay folder checked before the evaluation rather than after it (--output and --per-image are
    # checked as the flags are read, by argtypes.output_file)
    if args.overlays:
        writable_folder(args.overlays, create=False)
    if len(set(args.iou_thresholds)) < len(args.iou_thresholds):  # a repeat would weigh twice in MaxBoxAccV2
        raise ValueError(f"--iou-thresholds {' '.join(map(str, args.iou_thresholds))}: each threshold once")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.imagenet_baseline:
        kwargs = {"output_stride": args.output_stride} if args.output_stride else {}
        model = imagenet_cam_model(args.backbone, **kwargs).eval()
        cfg = {"method": "cam", "backbone": args.backbone, "input_size": 224, "class_names": None}
        ckpt_info = {"source": "imagenet-pretrained, untrained on the dataset"}
        state = {}  # no checkpoint: no training time, no threshold of its own
    elif args.checkpoint:
        model, cfg, state = load_model(args.checkpoint)
        ckpt_info = checkpoint_provenance(args.checkpoint, state)
    else:
        raise ValueError("give --checkpoint or --imagenet-baseline")
    size = args.input_size or cfg["input_size"]
    tta_sizes = augmenting_sizes(args.tta_sizes, size)
    # the options that move or average maps, refused in pairs that contradict each other before any work
    if args.map_shift_px and args.tta != "none":
        raise ValueError(f"--map-shift-px with --tta {args.tta}: the flip average already cancels the horizontal "
                         "displacement; use one of them")
    if args.align_maps and args.map_shift_px:
        raise ValueError("--align-maps with --map-shift-px: use one of them")
    if tta_sizes and (args.map_shift_px or args.align_maps):
        raise ValueError("--tta-sizes with --map-shift-px or --align-maps: those move a one-size map; use one of them")
    model = with_tta(model, args.tta, size, tta_sizes)
    if args.map_shift_px:
        model = ShiftedMaps(model, args.map_shift_px, size)
    map_offset = receptive_field_offset(model, size) if args.align_maps else (0.0, 0.0)  # float64 probes, on the CPU
    model = model.to(device)
    train_seconds = float(state.get("train_seconds", 0.0))
    samples = open_dataset(args.dataset, args.data_root, args.split, metadata_root=args.metadata_root,
                           synthetic_images=args.synthetic_images, synthetic_classes=args.synthetic_classes,
                           synthetic_size=args.synthetic_size, class_names=cfg.get("class_names"))
    if not args.imagenet_baseline:
        check_classes(samples, cfg.get("class_names") or [str(i) for i in range(cfg["num_classes"])])
    if args.max_images:
        samples = samples.subset(range(min(args.max_images, len(samples))))
    require_boxes(samples)
    thresholds = np.arange(0, 1, args.cam_threshold_step)
    scorer = LocalizationScorer(args.protocol, size, thresholds, tuple(args.iou_thresholds),
                                with_classification=not args.imagenet_baseline, map_offset_px=map_offset,
                                ivr_percentile=args.ivr_percentile)
    data = EvalDataset(samples, model.mean, model.std, size, args.skip_bad_images)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=False, collate_fn=collate_skip_bad,
                        num_workers=args.workers)
    overlay_items, indices, skipped = [], [], 0
    t0 = time.time()
    with torch.inference_mode():
        for batch, nbad in tqdm(loader, desc="evaluate", disable=args.no_progress):
            skipped += nbad
            if batch is None:
                continue
            logits, feats = model(batch["image"].to(device))
            target = logits.argmax(1) if args.imagenet_baseline else batch["label"].to(device)
            cams = model.cams(feats, target).cpu().numpy()
            maps = scorer.add(logits.cpu().numpy(), cams, batch["label"].numpy(), batch["boxes"], batch["mask"])
            indices += batch["index"].tolist()
            for j, m in enumerate(maps):
                if len(overlay_items) < (args.num_overlays if args.overlays else 0):
                    overlay_items.append((int(batch["index"][j]), m, batch["boxes"][j], int(target[j])))
    evaluated = len(indices)
    if evaluated == 0:
        raise ValueError("no image could be evaluated")
    metrics = scorer.compute()
    elapsed = time.time() - t0
    if overlay_items:
        tau = metrics["gt_known_threshold"]
        for idx, m, gt, cls in overlay_items:
            s = samples[idx]
            name = cfg["class_names"][cls] if cfg.get("class_names") else f"imagenet class {cls}"
            pred = box_from_scoremap(m, tau) if args.protocol == "wsoleval" else None
            write_png(Path(args.overlays) / f"{idx:05d}_{Path(s.image_id).stem}.png",
                      cam_overlay(s.load(), m, gt, pred, label=name))
    dataset_name = args.dataset_name or (Path(args.data_root).name if args.data_root else args.dataset)
    record = {
        "kind": "accuracy", "dataset": dataset_name, "split": args.split, "num_images": evaluated,
        "method": cfg.get("method", "cam"), "backbone": cfg["backbone"],
        "variant": "imagenet_untrained" if args.imagenet_baseline else None,
        "backend": "pytorch", "device": device, "precision": "fp32", "tta": args.tta,
        "tta_sizes": list(tta_sizes) if tta_sizes else None, "map_shift_px": args.map_shift_px,
        "map_offset_px": list(map_offset),
        "scoremap_normalization": "min-max" if args.ivr_percentile is None else "ivr",
        "ivr_percentile": args.ivr_percentile,
        "protocol": args.protocol, "input_size": size,
        "resize": f"{size}x{size} (no crop)",
        "cam_thresholds": {"start": 0.0, "stop": 1.0, "step": args.cam_threshold_step, "count": len(thresholds)},
        "iou_thresholds": list(args.iou_thresholds),
        "cam_class": ("own top-1 ImageNet class" if args.imagenet_baseline else
                      "class-agnostic SAT map" if cfg.get("method") == "sat" else "ground-truth class"),
        "box_rule": ("largest contour by cv2.contourArea (MaxBoxAcc), all outer contours (MaxBoxAccV2)"
                     if args.protocol == "wsoleval" else "8-connected component with most pixels"),
        "metrics": metrics, "train_seconds": train_seconds, "eval_seconds": elapsed,
        "skipped_images": skipped, **ckpt_info,
        "command": command_line("wsol_edge.evaluate", argv), "commit": git_commit(), "machine": machine_info(),
    }
    own_tau = state.get("cam_threshold")
    if own_tau is not None and args.protocol == "wsoleval" and args.tta == "none" and not tta_sizes \
            and not args.map_shift_px and not args.align_maps and args.ivr_percentile is None \
            and size == cfg["input_size"]:
        # chosen on these maps (at another input size the maps, and so their threshold, differ)
        record["deployed_threshold"] = {**scorer.at_threshold(own_tau), "checkpoint_threshold": own_tau,
                                        "source": state["cam_threshold_source"]}
    if args.output:
        atomic_write_json(args.output, record)
    if args.per_image:
        write_per_image(args.per_image, scorer.per_image(), [samples[i].image_id for i in indices],
                        per_image_info(record))
    return record


def format_metrics(m: dict) -> str:
    parts = [f"{k}={m[k]:.2f}" for k in ("top1_cls", "top5_cls", "top1_loc", "top5_loc", "gt_known_loc") if k in m]
    acc = m["max_box_acc"]  # keyed by IoU threshold, in the order asked for (--iou-thresholds)
    parts.append(f"MaxBoxAcc({'/'.join(map(str, acc))})=" + "/".join(f"{v:.1f}" for v in acc.values()))
    if m.get("max_box_acc_v2") is not None:
        parts.append(f"MaxBoxAccV2={m['max_box_acc_v2']:.2f}")
    if "pxap" in m:
        parts.append(f"PxAP={m['pxap']:.2f}")
    parts.append(f"best tau={m['gt_known_threshold']:.2f}")
    return "  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        record = evaluate(args, argv)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 2
    print(f"{record['dataset']}/{record['split']} ({record['num_images']} images, {record['protocol']}): "
          f"{format_metrics(record['metrics'])}")
    if "deployed_threshold" in record:
        d = record["deployed_threshold"]
        # scored on the swept thresholds: with a coarse --cam-threshold-step, the one nearest the checkpoint's
        where = (f"the checkpoint's own threshold {d['cam_threshold']:.2f}"
                 if abs(d["cam_threshold"] - d["checkpoint_threshold"]) < 1e-6 else
                 f"{d['cam_threshold']:.2f}, the swept threshold nearest the checkpoint's own "
                 f"{d['checkpoint_threshold']:.2f} (--cam-threshold-step {args.cam_threshold_step:g})")
        print(f"at {where}: gt_known_loc={d['gt_known_loc']:.2f}  top1_loc={d['top1_loc']:.2f}")
    for path in (args.output, args.per_image):
        if path:
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
