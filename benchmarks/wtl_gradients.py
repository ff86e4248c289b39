"""How strong is Where-to-Look's fusion loss against its two cross-entropies at the start of training?

Builds the WTL model of the methods table (ImageNet-initialised EfficientNet-Lite0, fresh heads),
takes batches of the train split with the training augmentation and one complementary hiding draw,
and reports the gradient norm of CE_x + CE_x~ and of L_fuse (summed and averaged over map
positions), per parameter group, and what beta = 50 makes of each reduction.
``python -m benchmarks.wtl_gradients --data-root ../shared/data/cub50 --output benchmarks/results/cub50_wtl_gradients.json``"""
from __future__ import annotations

import argparse
import sys

from wsol_edge.argtypes import output_file


def group_of(name: str) -> str:
    for prefix, group in (("backbone.", "backbone"), ("agg.", "aggregation_conv"), ("cls_", "classifiers")):
        if name.startswith(prefix):
            return group
    return "caam_ssam"


def gradient_norms(model, loss) -> dict[str, float]:
    import torch

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in named], retain_graph=True, allow_unused=True)
    sq: dict[str, float] = {}
    for (name, _), g in zip(named, grads):
        if g is not None:
            sq[group_of(name)] = sq.get(group_of(name), 0.0) + float(g.pow(2).sum())
    norms = {k: v ** 0.5 for k, v in sorted(sq.items())}
    norms["total"] = sum(sq.values()) ** 0.5
    return norms


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.nn.functional as F

    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.data import open_dataset
    from wsol_edge.data.torch_dataset import TrainDataset
    from wsol_edge.methods.wtl import fusion_loss
    from wsol_edge.modelio import build_from_config, model_config
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.wtl_gradients", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="CUB-layout folder (its train split)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--output-stride", type=int, default=16, help="as configs/cub50_cam_lite0.yaml")
    p.add_argument("--beta", type=float, default=50.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    samples = open_dataset("cub", args.data_root, "train")
    cfg = model_config("efficientnet_lite0", samples.num_classes, args.output_stride, 224, samples.class_names, "wtl", {})
    model = build_from_config(cfg, pretrained=True).train()
    data = TrainDataset(samples, model.mean, model.std, 256, 224, args.seed, False)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed)).tolist()
    gen = torch.Generator().manual_seed(args.seed)
    batches = []
    for i in range(args.batches):
        idx = order[i * args.batch_size:(i + 1) * args.batch_size]
        images = torch.stack([data[j][0] for j in idx])
        labels = torch.tensor([data[j][1] for j in idx])
        lx, lxt, cam_x, cam_xt = model.branches(images, labels, gen)
        ce = F.cross_entropy(lx, labels) + F.cross_entropy(lxt, labels)
        row = {"map_positions": cam_x.shape[1] * cam_x.shape[2], "ce": ce.item(),
               "cross_entropy_grad_norm": gradient_norms(model, ce)}
        for reduction in ("sum", "mean"):
            fuse = fusion_loss(cam_x, cam_xt, reduction)
            norms = gradient_norms(model, fuse)
            row[f"fuse_{reduction}"] = fuse.item()
            row[f"fuse_{reduction}_grad_norm"] = norms
            row[f"beta_x_fuse_{reduction}_over_ce_grad_norm"] = args.beta * norms["total"] / row["cross_entropy_grad_norm"]["total"]
        print({k: v for k, v in row.items() if not isinstance(v, dict)}, file=sys.stderr)
        batches.append(row)
    atomic_write_json(args.output, {
        "kind": "wtl_gradient_balance", "dataset": samples.name, "backbone": "efficientnet_lite0",
        "output_stride": args.output_stride, "batch_size": args.batch_size, "beta": args.beta,
        "init": "ImageNet backbone, fresh CAAM/SSAM/aggregation conv/classifiers", "batches": batches,
        "command": command_line("benchmarks.wtl_gradients", argv), "commit": git_commit(), "machine": machine_info()})
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
