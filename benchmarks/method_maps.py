"""Which of a checkpoint's maps localises? For two-path and SAT, whose design offers more than
one map, one pass over a split scores each candidate map of the ground-truth class with the
wsoleval protocol. The first candidate of each method is the map it deploys (its row equals
``wsol_edge.evaluate``'s); classification (and so Top-1 Loc) is always the deployed logits.

two-path (seed-methods.md: "the attention path's CAM localises"):
- ``attention_cam``: the attention path's CAM, W_att,c F_att (deployed);
- ``attention_mask``: the class-agnostic attention the perception path is re-weighted with,
  before its sigmoid, BN(conv1x1(A)) (the map the Attention Branch Network shows);
- ``attention_mask_sigmoid``: the same after the sigmoid, M in (0, 1);
- ``perception_cam``: the perception classifier's CAM on the re-weighted features E_p(F)(1 + M);
- ``perception_cam_unweighted``: that classifier's weights on E_p(F), without the re-weighting.

SAT:
- ``spatial_token_mask``: M, the mean of the spatial-aware blocks' masks (deployed);
- ``last_block_mask``: the last block's mask alone;
- ``class_map``: the classifier conv's map of the class (TS-CAM's semantic map; logits are its GAP);
- ``mask_times_class_map``: M times the class map's positive part (TS-CAM's coupling).

``python -m benchmarks.method_maps --checkpoints runs/methods_8ep/main/twopath/checkpoint.pt runs/methods_8ep/main/sat_hybrid/checkpoint.pt --data-root ../shared/data/cub50 --output benchmarks/results/cub50_method_maps.json``

``--per-image`` also writes each map's per-image table (``wsol_edge.evaluate --per-image``'s format)
to ``<checkpoint folder>/maps/<map name>.npz``, for ``benchmarks.paired_bootstrap``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsol_edge.argtypes import output_file, positive_int


def twopath_maps(net, images, labels) -> tuple:
    """-> (perception logits, {map name: [B, h, w] map of class ``labels``}) of a TwoPath ``net``."""
    from wsol_edge.models.cam import class_cams

    logits, _, f_att, maps, mask = net.paths(images)
    w = net.classifier.weight
    fp = f_att[:, f_att.shape[1] - w.shape[1]:]  # E_p(F) is F_att's last block (all of it with one extractor)
    return logits, {
        "attention_cam": net.inference_model().cams(f_att, labels),
        "attention_mask": net.att_to_mask(maps)[:, 0],
        "attention_mask_sigmoid": mask[:, 0],
        "perception_cam": class_cams(w, fp * (1 + mask), labels),
        "perception_cam_unweighted": class_cams(w, fp, labels),
    }


def sat_maps(net, images, labels) -> tuple:
    """-> (logits, {map name: [B, h, w] map of class ``labels``}) of a SAT ``net``."""
    import torch

    logits, class_maps, masks = net.maps(images)
    mask = masks.mean(0)[:, 0]
    class_map = class_maps[torch.arange(len(labels)), labels]
    return logits, {
        "spatial_token_mask": mask,
        "last_block_mask": masks[-1, :, 0],
        "class_map": class_map,
        "mask_times_class_map": mask * class_map.clamp(min=0),
    }


CANDIDATES = {"twopath": twopath_maps, "sat": sat_maps}


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.utils.data import DataLoader

    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.checkpoint import checkpoint_provenance
    from wsol_edge.data import open_dataset
    from wsol_edge.data.torch_dataset import EvalDataset, collate_skip_bad
    from wsol_edge.evaluation import LocalizationScorer, per_image_info, write_per_image
    from wsol_edge.modelio import load_wrapper
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.method_maps", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="+", required=True,
                   help=f"checkpoints of {' or '.join(CANDIDATES)} (wsol_edge.train --method ...)")
    p.add_argument("--data-root", required=True, help="CUB-layout folder")
    p.add_argument("--split", default="test")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--output", type=output_file, required=True)
    p.add_argument("--per-image", action="store_true",
                   help="also write each map's per-image table to <checkpoint folder>/maps/<map>.npz")
    args = p.parse_args(argv)
    folders = [Path(c).resolve().parent for c in args.checkpoints]
    if args.per_image and len(set(folders)) < len(folders):
        raise ValueError("--per-image writes <checkpoint folder>/maps/: give checkpoints from different folders")
    if args.threads:
        torch.set_num_threads(args.threads)

    samples = open_dataset("cub", args.data_root, args.split)
    run = {"command": command_line("benchmarks.method_maps", argv), "commit": git_commit(), "machine": machine_info()}
    records = []
    for path in args.checkpoints:
        net, cfg, state = load_wrapper(path)
        method = cfg.get("method", "cam")
        if method not in CANDIDATES:
            raise ValueError(f"{path} is a {method} checkpoint; candidate maps exist for {', '.join(CANDIDATES)}")
        net.eval()
        size = cfg["input_size"]
        provenance = checkpoint_provenance(path, state)  # one hash per checkpoint, not per map
        scorers: dict = {}
        indices: list[int] = []
        loader = DataLoader(EvalDataset(samples, net.mean, net.std, size, False), batch_size=32,
                            collate_fn=collate_skip_bad)
        with torch.inference_mode():
            for batch, _ in loader:
                logits, maps = CANDIDATES[method](net, batch["image"], batch["label"])
                indices += batch["index"].tolist()
                for name, m in maps.items():
                    if name not in scorers:  # not setdefault: that would build a scorer per batch and map
                        scorers[name] = LocalizationScorer("wsoleval", size)  # wsolevaluation's thresholds
                    scorers[name].add(logits.numpy(), m.numpy(), batch["label"].numpy(), batch["boxes"], batch["mask"])
        for name, scorer in scorers.items():
            metrics = scorer.compute()
            print(f"{path} {name}: MaxBoxAccV2 {metrics['max_box_acc_v2']:.2f} GT-known {metrics['gt_known_loc']:.2f}",
                  file=sys.stderr)
            records.append({"kind": "accuracy", "dataset": samples.name, "split": args.split,
                            "num_images": len(samples), "method": method, "backbone": cfg.get("backbone"),
                            "variant": f"map={name}", "backend": "pytorch", "precision": "fp32",
                            "protocol": "wsoleval", "input_size": size, "cam_class": "ground-truth class",
                            "metrics": metrics, "train_seconds": float(state.get("train_seconds", 0.0)),
                            **provenance, **run})
            if args.per_image:
                out = Path(path).parent / "maps" / f"{name}.npz"
                write_per_image(out, scorer.per_image(), [samples[i].image_id for i in indices],
                                per_image_info(records[-1]))
                records[-1]["per_image_file"] = str(out)
    atomic_write_json(args.output, {"records": records})
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
