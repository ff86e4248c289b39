"""The image's and its mirror's GT-class maps, for the studies of the models' left-right asymmetry
(benchmarks/box_offsets.py, benchmarks/map_shift.py), and the command line both take."""
from __future__ import annotations

import argparse

from wsol_edge.argtypes import output_file


def build_parser(prog: str, description: str, split: str, split_help: str | None = None,
                 max_images_help: str | None = None) -> argparse.ArgumentParser:
    """The options both studies take; each picks its ``--max-images`` subset itself."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--data-root", required=True, help="CUB-layout folder")
    p.add_argument("--split", default=split, help=split_help)
    p.add_argument("--max-images", type=int, default=None, help=max_images_help)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--output", type=output_file, required=True)
    return p


def open_split(args):
    """Sets torch's threads and opens ``--data-root``'s ``--split``; FileNotFoundError/ValueError
    with a one-line message when it cannot."""
    import torch

    from wsol_edge.data import open_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    return open_dataset("cub", args.data_root, args.split)


def load_checked(path, samples):
    """(inference model, model config, checkpoint dict) of a checkpoint with as many classes as
    ``samples``; FileNotFoundError/ValueError with a one-line message otherwise."""
    from wsol_edge.modelio import load_model

    model, cfg, state = load_model(path)
    if cfg["num_classes"] != samples.num_classes:
        raise ValueError(f"{path} has {cfg['num_classes']} classes, {samples.name} {samples.num_classes}")
    return model, cfg, state


def image_and_mirror_maps(model, samples, size: int, batch_size: int = 32):
    """For each batch of readable images: (batch, logits, the GT-class maps of the images, those of
    their mirrors mirrored back), all low-resolution torch tensors [B, h, w]."""
    import torch
    from torch.utils.data import DataLoader

    from wsol_edge.data.torch_dataset import EvalDataset, collate_skip_bad

    loader = DataLoader(EvalDataset(samples, model.mean, model.std, size), batch_size=batch_size,
                        collate_fn=collate_skip_bad)
    with torch.inference_mode():
        for batch, _ in loader:
            if batch is None:
                continue
            x, y = batch["image"], batch["label"]
            logits, feats = model(x)
            _, feats_m = model(x.flip(-1))
            yield batch, logits, model.cams(feats, y), model.cams(feats_m, y).flip(-1)
