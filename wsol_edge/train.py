"""Train a CAM model from image-level labels: ``python -m wsol_edge.train --config configs/cub50_cam_lite0.yaml``.

A plain loop in the style of torchvision's references: SGD with momentum (or AdamW, ``--optimizer
adamw``), linear warm-up then cosine decay, the new classifier at ``head_lr_mult`` times the
backbone's rate. The checkpoint (``<out>/checkpoint.pt``) is rewritten atomically after every
epoch, and ``--resume`` continues from it with the same data order and augmentations.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from .argtypes import (HelpFormatter, non_negative_float, non_negative_int, open_unit_interval, positive_float,
                       positive_int, unit_fraction)
from .cli_errors import error_line
from .config import parse_args
from .data import DATASET_KINDS
from .methods import DEIT_CONFIGS, METHODS
from .methods.identity_head import recorded_channels
from .methods.sat import MASK_KEYS as SAT_MASK_KEYS, NORM_KERNELS as SAT_NORM_KERNELS
from .methods.twopath import DEFAULT_CHANNELS as TWOPATH_CHANNELS, EXTRACTORS as TWOPATH_EXTRACTORS
from .methods.wtl import AGGREGATIONS as WTL_AGGREGATIONS, DEFAULT_AGG_CHANNELS as WTL_AGG_CHANNELS
from .mixed_precision import AMP_MODES
from .torch_device import DEVICE_HELP


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wsol_edge.train", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--config", help="YAML or JSON file of options; flags override it")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=DATASET_KINDS, default="cub")
    d.add_argument("--data-root", help="dataset folder (cub, voc), data root (wsoleval) or labels CSV (csv)")
    d.add_argument("--metadata-root", help="wsolevaluation metadata folder (dataset=wsoleval)")
    d.add_argument("--split", default="train")
    d.add_argument("--synthetic-images", type=positive_int, default=64)
    d.add_argument("--synthetic-classes", type=positive_int, default=4)
    d.add_argument("--synthetic-size", type=positive_int, default=96)
    d.add_argument("--skip-bad-images", action="store_true", help="skip and count unreadable images instead of stopping")
    d.add_argument("--resize", type=positive_int, default=256, help="train-time resize before the random crop")
    d.add_argument("--input-size", type=positive_int, default=224, help="crop size (train) and resize (eval)")
    d.add_argument("--workers", type=non_negative_int, default=0)
    m = p.add_argument_group("model")
    m.add_argument("--method", choices=METHODS, default="cam")
    m.add_argument("--has-grid-sizes", type=int, nargs="+", default=[0, 16, 32, 44, 56], help="HaS patch sizes (0: no hiding)")
    m.add_argument("--wtl-patch", default="mixed", help="WTL patch size: 16, 32, 44, 56 or mixed")
    m.add_argument("--wtl-beta", type=non_negative_float, default=50.0)
    m.add_argument("--wtl-agg-channels", type=positive_int,
                   help=f"WTL aggregation conv's output channels (default {WTL_AGG_CHANNELS}; linear_identity keeps "
                        "the backbone's)")
    m.add_argument("--wtl-aggregation", choices=WTL_AGGREGATIONS, default="conv3x3",
                   help="WTL aggregation conv: 3x3 conv+ReLU (default), 1x1 conv+ReLU, a bare 1x1 conv, or a bare "
                        "1x1 conv that starts as the identity on the backbone's channels (linear_identity)")
    m.add_argument("--wtl-slow-aggregation", action="store_true",
                   help="WTL: the aggregation conv trains at --lr (the backbone's rate), not at --lr x --head-lr-mult")
    m.add_argument("--wtl-fuse-reduction", choices=("mean", "sum"), default="mean",
                   help="L_fuse averaged (attention-transfer convention, default) or summed over map positions")
    m.add_argument("--wtl-fuse-map", choices=("raw", "relu"), default="raw",
                   help="L_fuse on the raw signed maps (paper) or on their positive parts (variant, see wtl.py)")
    m.add_argument("--wtl-beta-warmup", type=non_negative_float, default=0.0,
                   help="epochs over which beta ramps up from 0 (0: the paper's constant beta)")
    m.add_argument("--wtl-whole-share", type=float, default=0.0,
                   help="WTL: share of the images both branches see whole, unhidden (variant; 0: the paper's, always hidden)")
    m.add_argument("--no-caam", action="store_true", help="WTL ablation")
    m.add_argument("--no-ssam", action="store_true", help="WTL ablation")
    m.add_argument("--no-fuse", action="store_true", help="WTL ablation: no attention fusion loss")
    m.add_argument("--icl-attention", choices=("nonlocal", "channel_mean"), default="nonlocal",
                   help="ICL attention map (channel_mean = ADL's)")
    m.add_argument("--icl-drop-probs", type=float, nargs=3, default=[0.5, 0.25, 0.25],
                   metavar=("DISCRIMINATIVE", "BACKGROUND", "IMPORTANCE"),
                   help="ICL: how often each map is applied (weights, normalised to sum to 1; 0 turns a kind off)")
    m.add_argument("--icl-gamma-bg", type=float, default=0.2, metavar="GAMMA_BG",
                   help="ICL: the background drop keeps where the min-max normalised attention is >= this (0 < g < 0.5, "
                        "the foreground threshold; the contrastive loss's background is where it is below)")
    m.add_argument("--icl-hide-patches", type=int, nargs="+", default=[], metavar="SIZE",
                   help="ICL plus Hide-and-Seek's input hiding: a patch size drawn per step from these (0: no hiding), "
                        "each patch hidden with p 0.5 (HaS draws from 0 16 32 44 56); off by default")
    m.add_argument("--icl-loss-weights", type=float, nargs=2, default=[1.0, 1.0], metavar=("CONTRASTIVE", "CONSISTENCY"),
                   help="ICL: lambda_ca and lambda_fc (the paper does not give them; 1 1 by default)")
    m.add_argument("--no-bg-drop", action="store_true", help="ICL ablation: no background drop")
    m.add_argument("--no-contrastive", action="store_true", help="ICL ablation: no contrastive attention loss")
    m.add_argument("--no-consistency", action="store_true", help="ICL ablation: no foreground consistency loss")
    m.add_argument("--twopath-channels", type=positive_int,
                   help=f"two-path extractors' output channels (default {TWOPATH_CHANNELS}; linear_identity keeps "
                        "the backbone's)")
    m.add_argument("--share-extractor", action="store_true", help="two-path ablation: one extractor for both paths")
    m.add_argument("--no-attention-mask", action="store_true",
                   help="two-path ablation: the perception path ignores the attention map")
    m.add_argument("--twopath-extractor", choices=TWOPATH_EXTRACTORS, default="pointwise_depthwise",
                   help="two-path extractors: 1x1 conv+BN+ReLU then 3x3 depthwise+BN+ReLU (default), the 1x1 part "
                        "only, a bare 1x1 conv, or a bare 1x1 conv that starts as the identity on the backbone's "
                        "channels (linear_identity)")
    m.add_argument("--twopath-detach-maps", action="store_true",
                   help="two-path: the mask head reads the class maps with their gradient stopped, so the perception "
                        "path's loss does not shape the deployed maps")
    m.add_argument("--twopath-slow-extractors", action="store_true",
                   help="two-path: the extractors train at --lr (the backbone's rate), not at --lr x --head-lr-mult")
    m.add_argument("--sat-dim", type=positive_int, default=192, help="hybrid SAT token width")
    m.add_argument("--sat-heads", type=positive_int, default=3)
    m.add_argument("--sat-depth", type=positive_int, default=3, help="hybrid SAT: number of spatial-aware blocks")
    m.add_argument("--sat-plain-blocks", type=non_negative_int, default=0,
                   help="hybrid SAT: plain blocks before the spatial-aware ones (DeiT has 9), so the spatial token "
                        "has attended to the image before its first mask")
    m.add_argument("--sat-area", type=open_unit_interval, default=0.25, help="target of the batch-area loss")
    m.add_argument("--no-area-loss", action="store_true", help="SAT ablation")
    m.add_argument("--no-norm-loss", action="store_true", help="SAT ablation")
    m.add_argument("--sat-slow-blocks", action="store_true",
                   help="SAT: every new layer but the classifier conv (projection, tokens, blocks, norm) trains at --lr "
                        "(the backbone's rate), not at --lr x --head-lr-mult")
    m.add_argument("--sat-drop-path", type=unit_fraction, default=0.0,
                   help="SAT: stochastic depth rate of the last block, rising linearly from 0 over the blocks (the "
                        "authors train with 0.1)")
    m.add_argument("--sat-mask-pool", action="store_true",
                   help="SAT: the logits are the class maps' mean weighted by the localisation map, not their plain "
                        "average, so the classification loss reaches the map directly (a project variant)")
    m.add_argument("--sat-mask-keys", choices=SAT_MASK_KEYS, default="patches",
                   help="SAT: the mask scales attention to the patch keys only (default) or to every key, the class "
                        "and spatial tokens' too (the authors' code)")
    m.add_argument("--sat-norm-kernel", choices=SAT_NORM_KERNELS, default="binomial",
                   help="SAT: the normalisation loss smooths the mask with [1,2,1]x[1,2,1]/16 (default) or with the "
                        "authors' sharper kernel (0.80 at the centre, zero padding)")
    m.add_argument("--backbone", default="efficientnet_lite0",
                   help="CNN backbone, or deit_tiny|deit_small|deit_base for the faithful SAT")
    m.add_argument("--output-stride", type=int, default=None,
                   help="16 for finer CAMs (14x14 at 224: Lites, mobilenet_v2); 8 for 28x28 (Lites)")
    m.add_argument("--dilated", action="store_true",
                   help="with --output-stride 16 or 8 (Lites): dilate the convs after each removed stride, so "
                        "they keep the receptive field their ImageNet weights were trained with (DeepLab's atrous)")
    m.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True, help="start from ImageNet weights")
    m.add_argument("--weights", help="ImageNet weights file for the backbone")
    m.add_argument("--freeze-layers", type=non_negative_int, default=0, help="freeze this many leading backbone layers")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=positive_int, default=10)
    o.add_argument("--batch-size", type=positive_int, default=32)
    o.add_argument("--lr", type=non_negative_float, default=0.01)
    o.add_argument("--head-lr-mult", type=non_negative_float, default=10.0)
    o.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                   help="sgd: SGD with Nesterov momentum, weight decay on every parameter; adamw: AdamW (SAT's "
                        "authors train with it, lr 1e-4 and weight decay 0.05 at batch 256), no weight decay on "
                        "biases, norm layers and tokens; --lr and --weight-decay are not rescaled, give them")
    o.add_argument("--momentum", type=open_unit_interval, default=0.9, help="SGD's (AdamW keeps its default betas)")
    o.add_argument("--weight-decay", type=non_negative_float, default=1e-4)
    o.add_argument("--warmup-epochs", type=non_negative_float, default=0.5)
    o.add_argument("--clip-grad-norm", type=positive_float, default=None,
                   help="clip the gradient norm (default: 5.0 for wtl, whose CAAM/SSAM diverge without it, and sat, "
                        "whose new transformer blocks train with SGD by default; none otherwise)")
    o.add_argument("--precise-bn", type=non_negative_int, default=0, metavar="BATCHES",
                   help="after the last epoch, re-estimate BatchNorm statistics on this many batches of "
                        "un-hidden training images (see wsol_edge/precise_bn.py); with --resume on a finished "
                        "run, only this step runs")
    o.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps (smoke tests)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (default: all cores)")
    r.add_argument("--device", default="auto", help=DEVICE_HELP)
    r.add_argument("--amp", choices=AMP_MODES, default="none",
                   help="mixed precision for the training step: bf16 (GPUs from compute capability 8.0: A100, H100, "
                        "Orin) or fp16 with loss scaling (older GPUs); the weights and exports stay float32 "
                        "(wsol_edge/mixed_precision.py)")
    r.add_argument("--out", default="runs/train", help="folder for checkpoint.pt and train_log.json")
    r.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    r.add_argument("--overwrite", action="store_true",
                   help="train afresh into an --out that already holds a checkpoint, replacing it (without it, "
                        "that is refused: a rerun would otherwise replace a finished model)")
    r.add_argument("--threshold-images", type=non_negative_int, default=200,
                   help="after training, choose the deployment CAM threshold (GT-known best tau) on this many "
                        "boxed training images and store it in the checkpoint, for wsol_edge.run and export "
                        "(wsol_edge/threshold.py; skipped when the split has no boxes); 0: none")
    r.add_argument("--no-progress", action="store_true")
    return p


HYBRID_SAT_FLAGS = ("sat_dim", "sat_heads", "sat_depth", "sat_plain_blocks")
# Each method's own flags: given with another --method they would change nothing, so they are refused.
METHOD_FLAGS = {
    "has": ("has_grid_sizes",),
    "wtl": ("wtl_patch", "wtl_beta", "wtl_agg_channels", "wtl_aggregation", "wtl_fuse_reduction", "wtl_fuse_map",
            "wtl_beta_warmup", "wtl_slow_aggregation", "wtl_whole_share", "no_caam", "no_ssam", "no_fuse"),
    "icl": ("icl_attention", "icl_drop_probs", "icl_gamma_bg", "icl_hide_patches", "icl_loss_weights", "no_bg_drop",
            "no_contrastive", "no_consistency"),
    "twopath": ("twopath_channels", "share_extractor", "no_attention_mask", "twopath_extractor", "twopath_detach_maps",
                "twopath_slow_extractors"),
    "sat": (*HYBRID_SAT_FLAGS, "sat_area", "no_area_loss", "no_norm_loss", "sat_slow_blocks", "sat_drop_path",
            "sat_mask_keys", "sat_norm_kernel", "sat_mask_pool"),
}
OPTIMIZERS = ("sgd", "adamw")


def make_optimizer(kind: str, body: list, head: list, lr: float, head_lr_mult: float, momentum: float,
                   weight_decay: float, tokens: list | None = None):
    """The backbone's parameters (``body``) at ``lr``, the new layers (``head``) at ``lr * head_lr_mult``.

    AdamW leaves biases, norm layers' weights and learned tokens/position embeddings undecayed, as
    timm and SAT's authors do (decaying a token towards 0 only shrinks it); SGD keeps this project's
    earlier setting (decay on every parameter) so the committed SGD runs train as they did.
    """
    import torch

    if kind == "sgd":
        return torch.optim.SGD([{"params": body, "lr": lr}, {"params": head, "lr": lr * head_lr_mult}],
                               momentum=momentum, weight_decay=weight_decay, nesterov=True)
    if kind != "adamw":
        raise ValueError(f"unknown optimizer {kind!r}; choose from {', '.join(OPTIMIZERS)}")
    token_ids = {id(p) for p in tokens or []}

    def undecayed(p) -> bool:
        return p.ndim <= 1 or id(p) in token_ids

    groups = []
    for params, group_lr in ((body, lr), (head, lr * head_lr_mult)):
        decayed, plain = [p for p in params if not undecayed(p)], [p for p in params if undecayed(p)]
        groups += [g for g in ({"params": decayed, "lr": group_lr, "weight_decay": weight_decay},
                               {"params": plain, "lr": group_lr, "weight_decay": 0.0}) if g["params"]]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def split_by_learning_rate(model) -> tuple[list, list]:
    """(body, head): the trainable parameters at --lr (what ImageNet weights initialise, plus a
    method's ``backbone_rate_parameters()``) and those at --lr x --head-lr-mult, in model order."""
    from .methods import pretrained_parameter_ids

    body_ids = pretrained_parameter_ids(model)
    if hasattr(model, "backbone_rate_parameters"):  # new parameters that train at the backbone's rate (wtl.py, twopath.py)
        body_ids |= {id(p) for p in model.backbone_rate_parameters()}
    body = [p for p in model.parameters() if p.requires_grad and id(p) in body_ids]
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in body_ids]
    return body, head


def architecture_changes(saved: dict, cfg: dict) -> tuple[str, str] | None:
    """(what the checkpoint's model config says, what this run's says) for the method, backbone options
    and method options that differ, or None; configs saved before a field existed read as its default,
    and an option one side does not record as the module's default (a checkpoint from before the option
    was recorded, or ``--output-stride 32`` given against left unset, builds the same model)."""
    from .methods import method_option_defaults
    from .models.registry import backbone_option_defaults

    defaults = {"method": "cam", "backbone_kwargs": {}, "method_kwargs": {}}
    old = {k: saved.get(k, d) for k, d in defaults.items()}
    if old["method"] != cfg["method"]:
        return f"--method {old['method']}", f"--method {cfg['method']}"
    option_defaults = {"backbone_kwargs": backbone_option_defaults(cfg["backbone"]),
                       "method_kwargs": method_option_defaults(cfg["method"])}
    pairs = []
    for group in ("backbone_kwargs", "method_kwargs"):
        full_old, full_new = ({**option_defaults[group], **kw} for kw in (old[group], cfg[group]))
        pairs += [(f"{key}={old[group].get(key, '(unset)')}", f"{key}={cfg[group].get(key, '(unset)')}")
                  for key in sorted(set(old[group]) | set(cfg[group]))
                  if full_old.get(key, "(unset)") != full_new.get(key, "(unset)")]
    if not pairs:
        return None
    return ", ".join(a for a, _ in pairs), ", ".join(b for _, b in pairs)


def flags_given(args: argparse.Namespace, names, parser: argparse.ArgumentParser) -> list[str]:
    """The flags among ``names`` whose value differs from ``parser``'s default, as typed (--sat-dim)."""
    return [f"--{name.replace('_', '-')}" for name in names if getattr(args, name) != parser.get_default(name)]


def method_kwargs(args: argparse.Namespace) -> dict:
    parser = build_parser()  # for its defaults
    foreign = {method: flags_given(args, names, parser) for method, names in METHOD_FLAGS.items()
               if method != args.method}
    if any(foreign.values()):
        said = [f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for --method {method}"
                for method, given in foreign.items() if given]
        raise ValueError(f"{'; '.join(said)}; this run trains --method {args.method}")
    for flag, dest in (("--has-grid-sizes", "has_grid_sizes"), ("--wtl-patch", "wtl_patch"),
                       ("--icl-hide-patches", "icl_hide_patches")):
        values = getattr(args, dest)
        too_big = [int(v) for v in (values if isinstance(values, list) else [values])  # --wtl-patch may be "mixed"
                   if str(v).isdigit() and int(v) >= args.input_size]
        if too_big and flags_given(args, (dest,), parser):
            raise ValueError(f"{flag} {' '.join(map(str, too_big))}: a patch must be smaller than the "
                             f"{args.input_size} px training crop (--input-size), or one patch hides the whole image")
    if args.method == "has":
        return {"grid_sizes": list(args.has_grid_sizes)}
    if args.method == "wtl":
        patch = args.wtl_patch if args.wtl_patch == "mixed" else int(args.wtl_patch)
        channels = recorded_channels("agg_channels", args.wtl_aggregation, args.wtl_agg_channels, WTL_AGG_CHANNELS)
        return {"patch": patch, "beta": args.wtl_beta, **channels,
                "beta_warmup_epochs": args.wtl_beta_warmup, "fuse_reduction": args.wtl_fuse_reduction,
                "fuse_map": args.wtl_fuse_map, "aggregation": args.wtl_aggregation,
                "use_caam": not args.no_caam, "use_ssam": not args.no_ssam, "use_fuse": not args.no_fuse,
                # only when given, so the runs without it keep the method_kwargs their records already hold
                **({"slow_aggregation": True} if args.wtl_slow_aggregation else {}),
                **({"whole_share": args.wtl_whole_share} if args.wtl_whole_share else {})}
    if args.method == "icl":
        return {"attention": args.icl_attention, "drop_probs": list(args.icl_drop_probs), "gamma_bg": args.icl_gamma_bg,
                "use_bg_drop": not args.no_bg_drop,
                "use_contrastive": not args.no_contrastive, "use_consistency": not args.no_consistency,
                # only when given, so the runs without it keep the method_kwargs their records already hold
                **({"hide_grid_sizes": list(args.icl_hide_patches)} if args.icl_hide_patches else {}),
                **({"lambda_ca": args.icl_loss_weights[0], "lambda_fc": args.icl_loss_weights[1]}
                   if list(args.icl_loss_weights) != [1.0, 1.0] else {})}
    if args.method == "twopath":
        channels = recorded_channels("channels", args.twopath_extractor, args.twopath_channels, TWOPATH_CHANNELS)
        return {**channels, "share_extractor": args.share_extractor,
                "use_mask": not args.no_attention_mask, "extractor_kind": args.twopath_extractor,
                # only when given, so the runs without it keep the method_kwargs their records already hold
                **({"detach_maps": True} if args.twopath_detach_maps else {}),
                **({"slow_extractors": True} if args.twopath_slow_extractors else {})}
    if args.method == "sat":
        kw = {"area": args.sat_area, "use_area_loss": not args.no_area_loss, "use_norm_loss": not args.no_norm_loss,
              # only when given, so the runs without it keep the method_kwargs their records already hold
              **({"slow_blocks": True} if args.sat_slow_blocks else {}),
              **({"drop_path": args.sat_drop_path} if args.sat_drop_path else {}),
              **({"mask_keys": args.sat_mask_keys} if args.sat_mask_keys != "patches" else {}),
              **({"norm_kernel": args.sat_norm_kernel} if args.sat_norm_kernel != "binomial" else {}),
              **({"mask_pool": True} if args.sat_mask_pool else {})}
        if args.backbone in DEIT_CONFIGS:
            # DeiT fixes these, so a value given for them would be ignored without a word
            given = flags_given(args, HYBRID_SAT_FLAGS, parser)
            if given:
                raise ValueError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for the hybrid SAT; "
                                 f"{args.backbone} has its 12 blocks, the last 3 spatial-aware")
        else:
            kw.update(dim=args.sat_dim, heads=args.sat_heads, depth=args.sat_plain_blocks + args.sat_depth,
                      sat_depth=args.sat_depth)
        return kw
    return {}


def add_step(sums: dict, images: int, loss: float, correct: int, terms: dict) -> None:
    """Add one step to running sums (steps, images, image-weighted loss and terms, correct)."""
    sums["steps"] = sums.get("steps", 0) + 1
    sums["images"] = sums.get("images", 0) + images
    sums["loss"] = sums.get("loss", 0.0) + loss * images
    sums["correct"] = sums.get("correct", 0) + correct
    for name, value in terms.items():
        sums.setdefault("terms", {})[name] = sums.get("terms", {}).get(name, 0.0) + float(value) * images


def step_means(sums: dict) -> dict:
    """Per-image means of ``add_step``'s sums; ``loss_terms`` only where a step reported terms."""
    n = max(sums.get("images", 0), 1)
    out = {"steps": sums.get("steps", 0), "images": sums.get("images", 0), "loss": sums.get("loss", 0.0) / n,
           "train_acc": 100 * sums.get("correct", 0) / n}
    if sums.get("terms"):
        out["loss_terms"] = {k: v / n for k, v in sums["terms"].items()}
    return out


def lr_factor(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train(args: argparse.Namespace, argv: list[str] | None = None) -> dict:
    import torch

    from .distributed import start, stop

    if args.threads:
        torch.set_num_threads(args.threads)
    group, device = start(args.device)  # one process, or one of torchrun's (wsol_edge/distributed.py)
    finished = False
    try:
        summary = train_in(args, argv, group, device)
        finished = True
        return summary
    finally:
        stop(group, finished)


def train_in(args: argparse.Namespace, argv: list[str] | None, group, device: str) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler
    from tqdm import tqdm

    from .atomic import atomic_write_json, writable_folder
    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import check_classes, open_dataset
    from .data.torch_dataset import TrainDataset, collate_skip_bad
    from .distributed import ReplicasDiverged, data_parallel, merge_sums, replicas_agree
    from .methods import backbone_of
    from .mixed_precision import MixedPrecision
    from .modelio import build_from_config, model_config
    from .models.cam import freeze_early_layers, set_frozen_eval
    from .precise_bn import recalibrate_batchnorm
    from .runinfo import command_line, git_commit
    from .threshold import boxed_indices, choose_threshold

    on_gpu = device.startswith("cuda")
    is_main = group is None or group.is_main  # the process that writes and reports
    world = 1 if group is None else group.world_size
    amp = MixedPrecision(args.amp, device)  # before the data: a GPU without bfloat16 is refused at once
    torch.manual_seed(args.seed)  # also seeds CUDA's generator, which draws the masks of images on the GPU
    out = Path(args.out)
    ckpt_path = out / "checkpoint.pt"
    writable_folder(out, create=False)  # before the data and the model, not at the first epoch's end
    if ckpt_path.exists() and not (args.resume or args.overwrite):
        raise ValueError(f"{ckpt_path} exists: continue it with --resume, replace it with --overwrite, or give "
                         "another --out")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the checkpoint and --overwrite replaces it: give one of them")
    if args.resize < args.input_size:  # else numpy's "high <= 0" from the first random crop
        raise ValueError(f"--resize {args.resize} is smaller than --input-size {args.input_size}: the training crop "
                         f"is taken from the resized image; give --resize {round(args.input_size * 256 / 224)} (the "
                         "usual 256/224) or more")
    if args.warmup_epochs >= args.epochs:  # the rate would climb for the whole run and never reach --lr
        raise ValueError(f"--warmup-epochs {args.warmup_epochs:g} is not shorter than --epochs {args.epochs}: the "
                         "learning rate would never reach --lr; give fewer warm-up epochs (the default is 0.5)")
    samples = open_dataset(args.dataset, args.data_root, args.split, metadata_root=args.metadata_root,
                           synthetic_images=args.synthetic_images, synthetic_classes=args.synthetic_classes,
                           synthetic_size=args.synthetic_size, seed=args.seed)
    if len(samples) == 0:
        raise ValueError(f"no images in {samples.name}")
    if samples.num_classes < 2:  # softmax cross-entropy over one class is 0: no gradient ever reaches the CAM
        raise ValueError(f"{samples.name} has one class ({', '.join(samples.class_names)}): a classifier over one class "
                         "has nothing to learn, so its CAM never trains; WSOL needs two or more classes (add images "
                         "of other classes, e.g. a background class)")
    cfg = model_config(args.backbone, samples.num_classes, args.output_stride, args.input_size, samples.class_names,
                       args.method, method_kwargs(args), dilated=args.dilated)
    model = build_from_config(cfg, pretrained=args.pretrained, weights=args.weights).to(device)
    frozen = freeze_early_layers(backbone_of(model), args.freeze_layers)
    body, head = split_by_learning_rate(model)
    tokens = model.no_weight_decay() if hasattr(model, "no_weight_decay") else []  # a method's learned tokens
    opt = make_optimizer(args.optimizer, body, head, args.lr, args.head_lr_mult, args.momentum, args.weight_decay,
                         tokens)
    base_lrs = [g["lr"] for g in opt.param_groups]
    data = TrainDataset(samples, model.mean, model.std, args.resize, args.input_size, args.seed, args.skip_bad_images)
    steps_per_epoch = math.ceil(math.ceil(len(data) / world) / args.batch_size)  # per process
    total_steps = steps_per_epoch * args.epochs
    warmup = int(args.warmup_epochs * steps_per_epoch)

    start_epoch, history, train_seconds, skipped_total = 0, [], 0.0, 0
    commit = git_commit()  # per epoch: a resumed run may continue on other code
    command, train_args, precise_bn = None, None, None
    threshold = {"cam_threshold": None, "cam_threshold_source": None}  # of the weights as saved last

    def checkpoint_state() -> dict:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": len(history),
                "model_config": cfg, "train_args": train_args, "history": history, "train_seconds": train_seconds,
                "skipped_images": skipped_total, "command": command, "dataset": samples.name,
                "precise_bn": precise_bn, **threshold, "grad_scaler": amp.state_dict(),
                # where the model's random draws (hiding, drops) stand, so --resume continues the stream
                "torch_rng_state": torch.get_rng_state(),
                "cuda_rng_state": torch.cuda.get_rng_state(device) if on_gpu else None}

    if args.resume:
        state = load_checkpoint(ckpt_path)
        if state["model_config"]["backbone"] != cfg["backbone"] or state["model_config"]["num_classes"] != cfg["num_classes"]:
            raise ValueError(f"{ckpt_path}: checkpoint is for a different backbone/dataset; use another --out")
        check_classes(samples, state["model_config"].get("class_names"), str(ckpt_path))  # same count, other names
        changed = architecture_changes(state["model_config"], cfg)
        if changed:  # else the run would go on as another model, or fail in load_state_dict with torch's message
            raise ValueError(f"{ckpt_path}: trained with {changed[0]}, resumed with {changed[1]}; resume with the "
                             "flags it was trained with or use another --out")
        saved_optimizer = (state.get("train_args") or {}).get("optimizer", "sgd")
        if saved_optimizer != args.optimizer:
            raise ValueError(f"{ckpt_path}: trained with --optimizer {saved_optimizer}, resumed with --optimizer "
                             f"{args.optimizer}; resume with the same one or use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        amp.load_state_dict(state.get("grad_scaler"))  # float16's loss scale, where the run stood
        start_epoch, history = state["epoch"], state["history"]
        train_seconds, skipped_total = state["train_seconds"], state.get("skipped_images", 0)
        command, train_args, precise_bn = state.get("command"), state.get("train_args"), state.get("precise_bn")
        threshold = {k: state.get(k) for k in threshold}
        if state.get("torch_rng_state") is not None:
            torch.set_rng_state(state["torch_rng_state"])
        if on_gpu and state.get("cuda_rng_state") is not None:
            torch.cuda.set_rng_state(state["cuda_rng_state"], device)
        # on a GPU the masks draw from CUDA's generator, so that state is needed too
        lost_state = state.get("torch_rng_state") is None or (on_gpu and state.get("cuda_rng_state") is None)
        if lost_state and start_epoch < args.epochs:
            print(f"note: {ckpt_path} predates saved random state: the resumed epochs draw their hiding/drops "
                  "afresh, so they will not match an uninterrupted run", file=sys.stderr)
        if is_main:
            print(f"resumed from {ckpt_path} at epoch {start_epoch}", file=sys.stderr)

    clip = args.clip_grad_norm if args.clip_grad_norm is not None else (5.0 if args.method in ("wtl", "sat") else None)
    step = start_epoch * steps_per_epoch
    skipped_before = skipped_total
    trainer = model.training_loss if group is None else data_parallel(model, device)
    for epoch in range(start_epoch, args.epochs):
        data.set_epoch(epoch)
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        if group is None:
            order = {"shuffle": True, "generator": gen}
        else:  # each process its share of the epoch (the methods' random draws: wsol_edge/distributed.py)
            sampler = DistributedSampler(data, num_replicas=world, rank=group.rank, shuffle=True, seed=args.seed)
            sampler.set_epoch(epoch)
            order = {"sampler": sampler}
        loader = DataLoader(data, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate_skip_bad,
                            drop_last=False, pin_memory=on_gpu, **order)
        model.train()
        set_frozen_eval(frozen)
        t0 = time.time()
        # the epoch's sums, the same per step group where the model draws one, float16's skipped steps
        totals, groups, skipped_steps = {}, {}, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=args.no_progress or not is_main,
                   leave=False)
        for batch, skipped in bar:
            skipped_total += skipped
            if batch is None:
                if group is not None:  # the other processes would wait for this one's gradients for ever
                    raise ValueError(f"every image of a batch was unreadable (process {group.rank}, epoch {epoch + 1}); "
                                     "under torchrun every process steps together: remove the unreadable images")
                continue
            images, labels = (t.to(device, non_blocking=True) for t in batch)
            for g, base in zip(opt.param_groups, base_lrs):
                g["lr"] = base * lr_factor(step, total_steps, warmup)
            if hasattr(model, "set_progress"):
                model.set_progress(step / steps_per_epoch)
            with amp.autocast():
                loss, logits = trainer(images, labels)
            if not torch.isfinite(loss):
                hint = " (or train with --amp bf16: float16 overflows above 65504)" if args.amp == "fp16" else ""
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1} step {step}: lower --lr{hint}")
            opt.zero_grad(set_to_none=True)
            skipped_steps += not amp.backward_and_step(loss, opt, model.parameters(), clip)
            step += 1
            this_step = (len(labels), loss.item(), (logits.argmax(1) == labels).sum().item(),
                         getattr(model, "loss_terms", None) or {})
            add_step(totals, *this_step)
            if getattr(model, "step_group", None) is not None:
                add_step(groups.setdefault(model.step_group, {}), *this_step)
            bar.set_postfix(loss=f"{totals['loss'] / totals['images']:.3f}",
                            acc=f"{100 * totals['correct'] / totals['images']:.1f}")
            if args.max_steps and step >= args.max_steps:
                break
        train_seconds += time.time() - t0
        totals, groups = merge_sums(group, totals), merge_sums(group, groups)  # every process's images
        epoch_means = step_means(totals)
        history.append({"epoch": epoch + 1, "loss": epoch_means["loss"], "train_acc": epoch_means["train_acc"],
                        "images": epoch_means["images"], "seconds": time.time() - t0, "commit": commit,
                        "amp": args.amp})
        if amp.scaled:  # steps whose float16 gradients overflowed (the same in every process: DDP averaged them)
            history[-1]["amp_skipped_steps"] = skipped_steps
        if "loss_terms" in epoch_means:  # the method's loss terms, unweighted, averaged over the epoch's images
            history[-1]["loss_terms"] = epoch_means["loss_terms"]
        if groups:  # e.g. ICL's drop kinds: an epoch's loss depends on how many steps drew each
            history[-1]["by_step_group"] = {k: step_means(g) for k, g in sorted(groups.items())}
        command = command_line("wsol_edge.train", argv)
        train_args = {**vars(args), "device": device, "processes": world}  # what it ran on, not "auto"
        precise_bn = None
        threshold = dict.fromkeys(threshold)
        if is_main:
            print(f"epoch {epoch + 1}/{args.epochs} loss {history[-1]['loss']:.4f} acc {history[-1]['train_acc']:.1f}% "
                  f"({history[-1]['seconds']:.0f}s)", file=sys.stderr)
            save_checkpoint(ckpt_path, checkpoint_state())
        if args.max_steps and step >= args.max_steps:
            break
    finished = len(history) >= args.epochs
    if not replicas_agree(group, model):  # a DDP that did not average some gradient: say so, not ship it
        raise ReplicasDiverged("the processes' weights differ after training: gradients were not averaged across them")
    skipped_total = skipped_before + merge_sums(group, {"n": skipped_total - skipped_before})["n"]  # all processes'
    if not is_main:  # process 0 finishes the checkpoint and writes the log
        return {"checkpoint": str(ckpt_path), "device": device, "epochs": len(history), "rank": group.rank}
    if args.precise_bn and finished and (precise_bn or {}).get("batches_requested") != args.precise_bn:
        t0 = time.time()
        data.set_epoch(args.epochs)  # a fresh crop/flip draw, no hiding
        loader = DataLoader(data, batch_size=args.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(args.seed * 1000 + args.epochs),
                            num_workers=args.workers, collate_fn=collate_skip_bad)
        images = (batch[0].to(device) for batch, _ in loader if batch is not None)
        used = recalibrate_batchnorm(model.inference_model(), images, args.precise_bn, keep=frozen)
        precise_bn = {"batches_requested": args.precise_bn, "batches": used, "batch_size": args.batch_size,
                      "seconds": time.time() - t0, "command": command_line("wsol_edge.train", argv), "commit": commit}
        threshold = dict.fromkeys(threshold)  # new statistics, new maps
        save_checkpoint(ckpt_path, checkpoint_state())
        print(f"BatchNorm statistics re-estimated on {used} batches ({precise_bn['seconds']:.0f}s)", file=sys.stderr)
    if args.threshold_images and finished and threshold["cam_threshold"] is None:
        if not boxed_indices(samples):
            print(f"note: {samples.name} has no boxes, so the checkpoint carries no CAM threshold: pass --threshold "
                  "to wsol_edge.run, or export with --cam-threshold / --threshold-data-root", file=sys.stderr)
        else:
            from .backends.pytorch_backend import PyTorchBackend

            # from the saved file, so the threshold belongs to exactly the weights it ships with;
            # seed 0 as export's default, so both pick the same images of a split
            backend = PyTorchBackend(ckpt_path, device=device, all_cams=True)
            tau, source = choose_threshold(backend, samples, args.threshold_images, skip_bad=args.skip_bad_images)
            threshold = {"cam_threshold": tau, "cam_threshold_source": source}
            save_checkpoint(ckpt_path, checkpoint_state())
            print(f"CAM threshold {tau:.2f} ({source})", file=sys.stderr)
    if skipped_total:
        print(f"skipped {skipped_total} unreadable image(s)", file=sys.stderr)
    summary = {"checkpoint": str(ckpt_path), "device": device, "processes": world, "epochs": len(history),
               "train_seconds": train_seconds,
               "skipped_images": skipped_total, "history": history, "precise_bn": precise_bn, **threshold}
    atomic_write_json(out / "train_log.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    from .distributed import ReplicasDiverged

    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        summary = train(args, argv)
    except (FileNotFoundError, ValueError, FloatingPointError, ReplicasDiverged) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last completed epoch is in the checkpoint (use --resume)", file=sys.stderr)
        return 130
    if summary.get("rank", 0) == 0:  # under torchrun, process 0 reports
        print(f"trained {summary['epochs']} epoch(s) in {summary['train_seconds']:.0f}s -> {summary['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
