"""What Where-to-Look's inference graph drops: the size of CAAM's delta*Y and SSAM's alpha*R next to
the backbone features F they are added to in training (inference feeds the aggregation conv 2F).

CAAM's Y_x = Q_x^T F_x~ with Q_x row-softmaxed (the paper's eq. 4/6), so a channel that many rows
attend to collects a column sum of Q far above 1. Reported on train images with the training
augmentation and one complementary hiding draw, per checkpoint. What the classifier makes of it:
classifier X's top-1 accuracy on the same hidden views with the features it trained on, conv(F^c + F^s),
and with the attention terms dropped, conv(2F), as the served graph computes them; and the served
model's on the whole (augmented) images.
``python -m benchmarks.wtl_inference_gap --checkpoints runs/methods/main/wtl/checkpoint.pt --data-root ../shared/data/cub50 --output benchmarks/results/cub50_wtl_inference_gap.json``"""
from __future__ import annotations

import argparse
import sys

from wsol_edge.argtypes import output_file


def rms(t) -> float:
    return float(t.pow(2).mean().sqrt())


def main(argv: list[str] | None = None) -> int:
    import torch

    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.checkpoint import checkpoint_provenance
    from wsol_edge.data import open_dataset
    from wsol_edge.data.torch_dataset import TrainDataset
    from wsol_edge.modelio import load_wrapper
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.wtl_inference_gap", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="+", required=True, help="WTL training checkpoints")
    p.add_argument("--data-root", required=True, help="CUB-layout folder (its train split)")
    p.add_argument("--num-images", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)

    samples = open_dataset("cub", args.data_root, "train")
    rows = []
    for path in args.checkpoints:
        model, cfg, state = load_wrapper(path)
        if cfg.get("method") != "wtl":
            raise ValueError(f"{path} is a {cfg.get('method')!r} checkpoint, not wtl")
        model.eval()
        data = TrainDataset(samples, model.mean, model.std, 256, 224, args.seed, False)
        step = max(1, len(data) // args.num_images)
        picked = [data[i] for i in range(0, step * args.num_images, step)]
        images, labels = torch.stack([im for im, _ in picked]), torch.tensor([y for _, y in picked])

        def top1(logits) -> float:
            return 100.0 * float((logits.argmax(1) == labels).float().mean())

        def hidden_view_top1(features) -> float:  # classifier X on pooled features, as in training
            return top1(model.cls_x(features.mean((2, 3))))

        with torch.no_grad():
            fx, fxt = model.hidden_features(images, torch.Generator().manual_seed(args.seed))
            row = {**checkpoint_provenance(path, state), "features_rms": rms(fx), "features_max": float(fx.abs().max())}
            row.update(hidden_view_top1_trained_features=hidden_view_top1(model.branch_features(fx, fxt)[0]),
                       hidden_view_top1_served_features=hidden_view_top1(model.agg(fx + fx)),
                       whole_image_top1_served=top1(model.inference_model()(images)[0]))
            if model.caam is not None:
                x, xt = fx.flatten(2), fxt.flatten(2)
                qx, _ = model.caam.attention(x, xt)
                dy = model.caam.delta_x * torch.bmm(qx.transpose(1, 2), xt)
                row.update(delta_x=float(model.caam.delta_x), caam_delta_y_rms=rms(dy),
                           caam_delta_y_max=float(dy.abs().max()), caam_max_column_sum_of_q=float(qx.sum(1).max()))
            if model.ssam_x is not None:
                ar = model.ssam_x(fx) - fx
                row.update(alpha_x=float(model.ssam_x.alpha), ssam_alpha_r_rms=rms(ar))
            if model.ssam_xt is not None:  # branch X~'s gate too: only branch X is served, both train the backbone
                row.update(alpha_xt=float(model.ssam_xt.alpha))
        print({k: v for k, v in row.items() if not isinstance(v, str)}, file=sys.stderr)
        rows.append(row)
    atomic_write_json(args.output, {
        "kind": "wtl_inference_gap", "dataset": samples.name, "num_images": args.num_images, "branch": "x",
        "checkpoints": rows, "command": command_line("benchmarks.wtl_inference_gap", argv), "commit": git_commit(),
        "machine": machine_info()})
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
