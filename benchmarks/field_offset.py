"""Where do a model's map cells look? Arithmetic against effective receptive-field centres.

For each checkpoint: the arithmetic offset (wsol_edge/models/grid_offset.py: the centre of the
cells' receptive fields with uniform weights, against where the protocol's resize draws the cells;
+7.5 px right and down for EfficientNet-Lite0 at stride 16), and the effective one: the centre of
mass of |d map(i, j) / d image| for the four cells around the map's centre (so the image border
cuts both sides alike), summed over evenly spaced training images, for the GT-class map of the
image and of its mirror (each in its own frame), minus the drawn position. A model whose cells look
d px left of where they are drawn (effective dx = -d) puts its maps d px right of the object.
No box is used. The ImageNet-pretrained CAM (its top-1 ImageNet class) can be added with
``--imagenet-baseline BACKBONE`` to tell what fine-tuning changed from what the weights brought.
``python -m benchmarks.field_offset --checkpoints runs/methods_12ep/main/cam/checkpoint.pt --data-root ../shared/data/cub50 --output benchmarks/results/cub50_field_offset.json``"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DEFAULT_IMAGES = 40


def effective_offset(model, images, class_ids) -> tuple[float, float]:
    """(dx, dy) in input pixels: gradient-magnitude centre of the four centre cells of each image's map
    of ``class_ids`` (None: its own top-1 class), averaged over the cells, minus where the resize draws
    them."""
    from wsol_edge.models.grid_offset import centre_of_mass, drawn_position

    x = images.clone().requires_grad_(True)
    logits, maps_input = model(x)
    ids = logits.argmax(1) if class_ids is None else class_ids
    cams = model.cams(maps_input, ids)
    (h, w), (size_h, size_w) = cams.shape[-2:], x.shape[-2:]
    offsets = []
    for i in (h // 2 - 1, h // 2):
        for j in (w // 2 - 1, w // 2):
            x.grad = None
            cams[:, i, j].sum().backward(retain_graph=True)  # images are independent in eval mode
            cx, cy = centre_of_mass(x.grad.abs().sum((0, 1)))
            offsets.append((cx - drawn_position(j, w, size_w), cy - drawn_position(i, h, size_h)))
    dx, dy = np.mean(offsets, axis=0)
    return float(dx), float(dy)


def measure(model, samples, size: int, with_labels: bool) -> dict:
    import torch

    from wsol_edge.evaluation import eval_sample
    from wsol_edge.models.grid_offset import receptive_field_offset

    images, labels = [], []
    for s in samples:
        image, label, _, _ = eval_sample(s, size, model.mean, model.std)
        images.append(torch.from_numpy(image))
        labels.append(label)
    images, ids = torch.stack(images), torch.tensor(labels) if with_labels else None
    image_dx, image_dy = effective_offset(model, images, ids)
    mirror_dx, mirror_dy = effective_offset(model, images.flip(-1), ids)
    arith_dx, arith_dy = receptive_field_offset(model, size)
    return {"arithmetic_offset_px": [arith_dx, arith_dy],
            "effective_offset_px": {"image": [round(image_dx, 2), round(image_dy, 2)],
                                    "mirror_own_frame": [round(mirror_dx, 2), round(mirror_dy, 2)],
                                    "mean": [round((image_dx + mirror_dx) / 2, 2), round((image_dy + mirror_dy) / 2, 2)]},
            "num_images": len(samples)}


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.checkpoint import checkpoint_provenance
    from wsol_edge.models import imagenet_cam_model
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    from .mirror_pass import build_parser, load_checked, open_split

    p = build_parser("python -m benchmarks.field_offset", __doc__.split("\n\n")[0], split="train",
                     max_images_help=f"evenly spaced images of the split (default {DEFAULT_IMAGES})")
    p.add_argument("--imagenet-baseline", nargs="*", default=[], metavar="BACKBONE",
                   help="also the untrained ImageNet CAM of these backbones (output stride 16)")
    args = p.parse_args(argv)
    try:
        samples = open_split(args)
        count = min(args.max_images or DEFAULT_IMAGES, len(samples))
        samples = samples.subset(np.linspace(0, len(samples) - 1, count).astype(int).tolist())
        models = [(path, *load_checked(path, samples)) for path in args.checkpoints]
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    records = []
    for name in args.imagenet_baseline:
        model = imagenet_cam_model(name, output_stride=16).eval()
        records.append({"model": f"{name} ImageNet CAM (own top-1 class)", **measure(model, samples, 224, False)})
    for path, model, cfg, state in models:
        records.append({"checkpoint": path, "method": cfg.get("method", "cam"), "backbone": cfg["backbone"],
                        "input_size": cfg["input_size"], **checkpoint_provenance(path, state),
                        **measure(model, samples, cfg["input_size"], True)})
    for r in records:
        e = r["effective_offset_px"]
        print(f"{r.get('checkpoint', r.get('model'))}: arithmetic {r['arithmetic_offset_px']}, effective image "
              f"{e['image']}, mirror {e['mirror_own_frame']}")
    atomic_write_json(args.output, {
        "kind": "field_offset", "dataset": Path(args.data_root).name, "split": args.split,
        "estimator": "effective: centre of mass of |d map(i, j) / d image| over the four centre cells and the images, "
                     "minus the cell's position in an align_corners=False resize; arithmetic: the same with every "
                     "layer made a uniform linear average (wsol_edge/models/grid_offset.py); positive: right, down",
        "records": records, "command": command_line("benchmarks.field_offset", argv), "commit": git_commit(),
        "machine": machine_info()})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
