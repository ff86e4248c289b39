"""Train and evaluate the seed methods on cub50 with one backbone, schedule and protocol.

``python -m benchmarks.methods --table main`` trains every method (``--only has`` for one) from
``configs/cub50_cam_lite0.yaml`` with ``--epochs`` overridden, evaluates each on the test split
(wsoleval protocol, GT-class CAM) and merges its row into ``--output``: rerunning one method
replaces that row and keeps the others, and says whether the row it replaced came back
(``row_back``). ``--table wtl_ablation`` runs the Where-to-Look ablation,
``--table twopath_ablation`` the two-path one, ``--table icl_ablation`` ICL's, ``--table sat_ablation``
SAT-hybrid's.

Each run lives in ``<runs>/<table>/<name>/``; a finished checkpoint is reused (``--retrain`` to
start over), an interrupted one resumes, so the command can be stopped and run again. After
training, every row's BatchNorm statistics are re-estimated on un-hidden training images
(``--precise-bn``, wsol_edge/precise_bn.py): a finished checkpoint without it gets only that step.
Each run also keeps its per-image tables (``per_image.npz``) for ``python -m benchmarks.paired_bootstrap``.
``--split train`` scores the 1,500 boxed training images instead (``eval_train.json``,
``per_image_train.npz``): boxes are never used in training, so choices between rows can be made
there and the test split scored once, for the row chosen.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from wsol_edge.argtypes import non_negative_int, output_file, positive_int

from .report import markdown_table

# name -> extra flags for python -m wsol_edge.train (on top of the shared config)
TABLES: dict[str, dict[str, list[str]]] = {
    "main": {
        "cam": ["--method", "cam"],
        "has": ["--method", "has"],
        "wtl": ["--method", "wtl"],
        "icl": ["--method", "icl"],
        "twopath": ["--method", "twopath"],
        "sat_hybrid": ["--method", "sat"],
    },
    # Babar & Das's Table: each pair of CAAM / SSAM / L_fuse, and all three.
    "wtl_ablation": {
        "caam+ssam": ["--method", "wtl", "--no-fuse"],
        "caam+fuse": ["--method", "wtl", "--no-ssam"],
        "ssam+fuse": ["--method", "wtl", "--no-caam"],
        "caam+ssam+fuse": ["--method", "wtl"],
        # L_fuse summed over map positions (~200x the cross-entropies' gradient, see wtl.py), with
        # the 1-epoch beta warm-up that was tried against it.
        "caam+ssam+fuse_sum_warmup1": ["--method", "wtl", "--wtl-fuse-reduction", "sum", "--wtl-beta-warmup", "1"],
        # Project variant: L_fuse on the maps' positive parts (see wtl.py).
        "caam+ssam+fuse_relu": ["--method", "wtl", "--wtl-fuse-map", "relu"],
        # The same with a bare 1x1 aggregation conv instead of the 3x3 conv + ReLU (see wtl.py).
        "caam+ssam+fuse_relu_linear": ["--method", "wtl", "--wtl-fuse-map", "relu", "--wtl-aggregation", "linear"],
        # The same with that conv at the backbone's rate (what brought two-path's bare 1x1 extractors past CAM).
        "caam+ssam+fuse_relu_linear_slow_aggregation": ["--method", "wtl", "--wtl-fuse-map", "relu", "--wtl-aggregation",
                                                        "linear", "--wtl-slow-aggregation"],
        # The same conv on the backbone's 1280 channels, starting as the identity (a fresh model is then CAM's
        # head read by two classifiers) instead of a random 512-channel projection.
        "caam+ssam+fuse_relu_linear_identity_slow_aggregation": ["--method", "wtl", "--wtl-fuse-map", "relu",
                                                                 "--wtl-aggregation", "linear_identity",
                                                                 "--wtl-slow-aggregation"],
        # The 512-channel row above with one image in five shown whole to both branches (HaS's size 0,
        # which Where-to-Look's mixed sizes lack): its classifiers then see whole birds, as at test time.
        "caam+ssam+fuse_relu_linear_slow_aggregation_whole_share0.2": ["--method", "wtl", "--wtl-fuse-map", "relu",
                                                                        "--wtl-aggregation", "linear",
                                                                        "--wtl-slow-aggregation",
                                                                        "--wtl-whole-share", "0.2"],
        # The row above without CAAM: CAAM's delta * Y (a channel mix of the complementary view's features at
        # the same positions) grows to twice the rms of F, so each branch sees, at the positions its view
        # hides, what the other view shows: the hiding that HaS's maps gain from is undone in training (the
        # hypothesis this row tests: METHODS.md, "Without CAAM?").
        "ssam+fuse_relu_linear_slow_aggregation_whole_share0.2": ["--method", "wtl", "--no-caam", "--wtl-fuse-map",
                                                                  "relu", "--wtl-aggregation", "linear",
                                                                  "--wtl-slow-aggregation", "--wtl-whole-share",
                                                                  "0.2"],
    },
    # Two-path: which part costs its localisation? The two feature extractors, or the perception
    # path's re-weighting by the attention (F' = F * (1 + M))? One extractor without re-weighting
    # is a CAM read through the new extractor head (plus a second classifier on the same features).
    "twopath_ablation": {
        "two_extractors+reweight": ["--method", "twopath"],
        "two_extractors": ["--method", "twopath", "--no-attention-mask"],
        "one_extractor+reweight": ["--method", "twopath", "--share-extractor"],
        "one_extractor": ["--method", "twopath", "--share-extractor", "--no-attention-mask"],
        # The full method with lighter extractors: without the 3x3 depthwise conv, or a bare 1x1 conv.
        "two_extractors+reweight_pointwise": ["--method", "twopath", "--twopath-extractor", "pointwise"],
        "two_extractors+reweight_linear": ["--method", "twopath", "--twopath-extractor", "linear"],
        # The lightest head with the class maps' gradient stopped before the mask head: the perception
        # loss then trains the mask head and the backbone but not the deployed maps.
        "two_extractors+reweight_linear_detach_maps": ["--method", "twopath", "--twopath-extractor", "linear",
                                                       "--twopath-detach-maps"],
        # The lightest head without its bottleneck: two 640-channel extractors, so the attention CAM reads
        # 1280 channels, as many as the backbone gives (a 256-channel pair leaves it rank 512).
        "two_extractors+reweight_linear_640": ["--method", "twopath", "--twopath-extractor", "linear",
                                               "--twopath-channels", "640"],
        # The lightest head with its extractors at the backbone's rate (the attention CAM is a product
        # of two new matrices; at the head's 10x rate both move fast at once, a CAM's one does not).
        "two_extractors+reweight_linear_slow_extractors": ["--method", "twopath", "--twopath-extractor", "linear",
                                                           "--twopath-slow-extractors"],
        # The specified extractors (1x1 conv+BN+ReLU, 3x3 depthwise+BN+ReLU) at the backbone's rate: the rate
        # change alone, without the bare 1x1 conv that was chosen on seed 1's test results.
        "two_extractors+reweight_slow_extractors": ["--method", "twopath", "--twopath-slow-extractors"],
        # The same extractors on the backbone's 1280 channels, each starting as the identity (a fresh attention
        # path is then a CAM of the backbone's features) instead of a random 256-channel projection.
        "two_extractors+reweight_linear_identity_slow_extractors": ["--method", "twopath", "--twopath-extractor",
                                                                    "linear_identity", "--twopath-slow-extractors"],
    },
    # ICL: which component costs its localisation at 12 epochs (ahead of CAM at 3 and 8)? Each row
    # takes one away: background drop (bg_drop), the contrastive attention loss (ca), the foreground
    # consistency loss (fc), the non-local attention (ADL's channel mean instead), or the
    # discriminative drop (a dropped kind's share goes to the others, see icl.py).
    "icl_ablation": {
        "nonlocal+bg_drop+ca+fc": ["--method", "icl"],
        "nonlocal+ca+fc": ["--method", "icl", "--no-bg-drop"],
        "nonlocal+bg_drop+fc": ["--method", "icl", "--no-contrastive"],
        "nonlocal+bg_drop+ca": ["--method", "icl", "--no-consistency"],
        "channel_mean+bg_drop+ca+fc": ["--method", "icl", "--icl-attention", "channel_mean"],
        "nonlocal+bg_drop+ca+fc_no_disc_drop": ["--method", "icl", "--icl-drop-probs", "0", "0.25", "0.25"],
        # not an ablation row: the two one-component changes above that beat CAM, together (do they add?)
        "channel_mean+bg_drop+ca+fc_no_disc_drop": ["--method", "icl", "--icl-attention", "channel_mean",
                                                    "--icl-drop-probs", "0", "0.25", "0.25"],
    },
    # The best localizer (channel-mean attention, no discriminative drop): does more background drop
    # help it? Its background drop cuts the background CAM lights, CAM's most common miss; these rows
    # drop background more often, or more of it. Chosen between on training images (--split train).
    "icl_background": {
        "both_changes": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "0.25", "0.25"],
        "bg_drop_3of4": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "0.75", "0.25"],
        "bg_drop_only": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "1", "0"],
        "gamma_bg_0.3": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "0.25", "0.25",
                         "--icl-gamma-bg", "0.3"],
        # Added after the rows above were scored on training images (every step won; more area lost):
        # the winner with less area dropped.
        "bg_drop_only_gamma_bg_0.1": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "1",
                                      "0", "--icl-gamma-bg", "0.1"],
        # Added after the winner was scored on test (an ablation, not a choice): is the winner just its
        # background drop? Both ICL losses off; the losses were ablated before only in the paper's setting.
        "bg_drop_only_no_losses": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "1",
                                   "0", "--no-contrastive", "--no-consistency"],
        # Then (both off lost 2.6 MaxBoxAccV2 on test, seed 0): which of the two?
        "bg_drop_only_no_contrastive": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0",
                                        "1", "0", "--no-contrastive"],
        # A project combination, not an ablation: the winner plus Hide-and-Seek's input hiding (HaS's misses
        # lean to boxes too small; the background drop is aimed at boxes too large).
        "bg_drop_only_hide_patches": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "1",
                                      "0", "--icl-hide-patches", "0", "16", "32", "44", "56"],
        # The training crop's scale, not the method: the crop from a 256 resize shows birds 256/224 = 1.14x
        # larger than the test's plain 224 resize. A smaller resize narrows that gap (224: no crop left,
        # flip only). Chosen between on training images, like the rows above.
        "bg_drop_only_resize_224": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "1",
                                    "0", "--resize", "224"],
        "bg_drop_only_resize_240": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "1",
                                    "0", "--resize", "240"],
        # The contrastive loss is what ICL adds to the background drop here (without it: -2.2 / -1.6 / -1.7 on
        # test); the paper gives no weight. More of it, chosen between on training images.
        "bg_drop_only_ca_2": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "1", "0",
                              "--icl-loss-weights", "2", "1"],
        "bg_drop_only_ca_4": ["--method", "icl", "--icl-attention", "channel_mean", "--icl-drop-probs", "0", "1", "0",
                              "--icl-loss-weights", "4", "1"],
    },
    # SAT-hybrid: which part costs its localisation (7.4-7.9 MaxBoxAccV2 behind CAM at 12 epochs)?
    # Each row takes one loss away, or keeps one spatial-aware block of the three: the new layers on
    # top of the backbone are what cost two-path and Where-to-Look their maps.
    "sat_ablation": {
        "spatial_token+area+norm": ["--method", "sat"],
        "spatial_token+norm": ["--method", "sat", "--no-area-loss"],
        "spatial_token+area": ["--method", "sat", "--no-norm-loss"],
        "spatial_token+area+norm_1block": ["--method", "sat", "--sat-depth", "1"],
        "spatial_token+area+norm_1plain": ["--method", "sat", "--sat-plain-blocks", "1"],
        # Not an ablation: the same model trained as SAT's authors train theirs, with AdamW (lr 1e-4 and
        # weight decay 0.05 at their batch 256; here at batch 32 the backbone at 1e-4, the new blocks at
        # 1e-3 through --head-lr-mult 10) instead of the SGD (lr 0.05 on the new blocks) every other row uses.
        "spatial_token+area+norm_adamw": ["--method", "sat", "--optimizer", "adamw", "--lr", "0.0001",
                                          "--weight-decay", "0.05"],
        # Then (the row above lost 13 MaxBoxAccV2 to SGD's): the authors' one rate for every parameter,
        # new blocks included, as in their recipe (their new parts are only the spatial token's).
        "spatial_token+area+norm_adamw_one_lr": ["--method", "sat", "--optimizer", "adamw", "--lr", "0.0001",
                                                 "--weight-decay", "0.05", "--head-lr-mult", "1"],
        # Not an ablation: SGD as every row, with every new layer but the classifier conv at the backbone's
        # rate (what brought two-path's extractors past CAM).
        "spatial_token+area+norm_slow_blocks": ["--method", "sat", "--sat-slow-blocks"],
        # Not an ablation: the row above with the three details of the authors' released code this
        # project had read otherwise (the mask on every key, their sharper smoothing kernel, stochastic
        # depth 0.1): does following their code more closely close the gap to CAM?
        "spatial_token+area+norm_slow_blocks_authors_code": ["--method", "sat", "--sat-slow-blocks",
                                                             "--sat-mask-keys", "all", "--sat-norm-kernel", "authors",
                                                             "--sat-drop-path", "0.1"],
        # Not an ablation: the slow-blocks row with the logits pooled under the map M instead of averaged, so
        # the classification loss reaches the mask from the first step (it idles for five epochs otherwise),
        # and the classifier can no longer score the background tokens the mask leaves out.
        "spatial_token+area+norm_slow_blocks_mask_pool": ["--method", "sat", "--sat-slow-blocks", "--sat-mask-pool"],
        # The pooling alone, the new layers at the new head's 10x as specified: does it need both changes?
        "spatial_token+area+norm_mask_pool": ["--method", "sat", "--sat-mask-pool"],
    },
    # Not a method: train --amp. The same CAM trained in float32 and under bfloat16 autocast, for the time a step
    # takes and whether the maps keep their localisation (on a CPU with AVX512_BF16, or with --device cuda).
    "amp": {
        "cam_fp32": ["--method", "cam"],
        "cam_bf16": ["--method", "cam", "--amp", "bf16"],
    },
}
# Said in the row's record, for runs whose history the flags alone do not tell.
NOTES = {
    ("wtl_ablation", "caam+ssam+fuse_sum_warmup1"):
        "trained at commit 05c0399 (working tree with uncommitted changes) as the methods table's wtl row, when summed L_fuse and a 1-epoch beta warm-up "
        "were the defaults (its train_command therefore shows no WTL flags); the flags above reproduce it",
}
# Rows trained with the same flags as another table's row share its run (and its checkpoint).
SAME_RUN = {("wtl_ablation", "caam+ssam+fuse"): ("main", "wtl"),
            ("twopath_ablation", "two_extractors+reweight"): ("main", "twopath"),
            ("icl_ablation", "nonlocal+bg_drop+ca+fc"): ("main", "icl"),
            ("icl_background", "both_changes"): ("icl_ablation", "channel_mean+bg_drop+ca+fc_no_disc_drop"),
            ("sat_ablation", "spatial_token+area+norm"): ("main", "sat_hybrid")}
COLUMNS = (("top1_cls", "Top-1 Cls"), ("top1_loc", "Top-1 Loc"), ("gt_known_loc", "GT-known Loc"),
           ("max_box_acc_v2", "MaxBoxAccV2"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.methods", description=__doc__.split("\n\n")[0])
    p.add_argument("--table", choices=sorted(TABLES), default="main")
    p.add_argument("--only", nargs="+", help="run these rows only (names: see TABLES in benchmarks/methods.py)")
    p.add_argument("--config", default="configs/cub50_cam_lite0.yaml", help="shared training config")
    p.add_argument("--data-root", default="../shared/data/cub50")
    p.add_argument("--epochs", type=positive_int, default=3, help="same schedule for every method")
    p.add_argument("--precise-bn", type=non_negative_int, default=30, metavar="BATCHES",
                   help="re-estimate BatchNorm statistics on this many batches of un-hidden training images after "
                        "training, for every row (wsol_edge/precise_bn.py); 0: off")
    p.add_argument("--backbone", default=None,
                   help="backbone for every row (default: the config's); use a --runs and --output of its own")
    p.add_argument("--output-stride", type=int, choices=(8, 16, 32), default=None,
                   help="backbone output stride for every row (default: the config's, 16: 14x14 CAMs at 224; "
                        "8: 28x28); use a --runs and --output of its own")
    p.add_argument("--dilated", action="store_true",
                   help="dilate the convs after each removed stride (wsol_edge.train --dilated) for every row; "
                        "use a --runs and --output of its own")
    p.add_argument("--seed", type=int, default=None,
                   help="training seed for every row (default: the config's); use a --runs and --output of its own")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="split scored after training (train: to choose between rows before scoring test; "
                        "use an --output of its own)")
    p.add_argument("--runs", default="runs/methods", help="folder for checkpoints and per-run results")
    p.add_argument("--retrain", action="store_true", help="ignore finished checkpoints")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--device", default="cpu",
                   help="train and evaluate on this device (cpu, cuda, cuda:N, auto); cpu by default, as every "
                        "committed row was trained; a GPU's rows differ from the CPU's by more than rounding, so "
                        "use a --runs and --output of their own")
    p.add_argument("--workers", type=non_negative_int, default=0, help="image-decoding worker processes per run")
    p.add_argument("--output", type=output_file, help="result JSON (default: benchmarks/results/cub50_methods.json, "
                                    "or cub50_<table>.json for another --table; _train before .json with --split train)")
    return p


def split_suffix(split: str) -> str:
    """What names a split's files apart from the test split's: "" for test, "_train" for train."""
    return "" if split == "test" else f"_{split}"


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def train_and_evaluate(name: str, flags: list[str], args, run_dir: Path) -> dict:
    ckpt = run_dir / "checkpoint.pt"
    if args.retrain and ckpt.exists():
        ckpt.unlink()
    threads = ["--threads", str(args.threads)] if args.threads else []
    device = ["--device", args.device, "--workers", str(args.workers)]
    seed = ["--seed", str(args.seed)] if args.seed is not None else []
    backbone = ["--backbone", args.backbone] if args.backbone else []
    feature_map = ["--output-stride", str(args.output_stride)] if args.output_stride else []
    feature_map += ["--dilated"] if args.dilated else []
    run([sys.executable, "-m", "wsol_edge.train", "--config", args.config, "--data-root", args.data_root,
         *flags, "--epochs", str(args.epochs), *seed, *backbone, *feature_map, "--out", str(run_dir), "--no-progress",
         *threads, *device, "--precise-bn", str(args.precise_bn), *(["--resume"] if ckpt.exists() else [])])
    suffix = split_suffix(args.split)
    result = run_dir / f"eval{suffix}.json"
    run([sys.executable, "-m", "wsol_edge.evaluate", "--checkpoint", str(ckpt), "--dataset", "cub",
         "--data-root", args.data_root, "--split", args.split, "--no-progress", "--output", str(result),
         "--per-image", str(run_dir / f"per_image{suffix}.npz"), *threads, *device])
    record = json.loads(result.read_text())
    record["variant"] = name
    record["train_flags"] = flags
    record["schedule"] = {"config": args.config, "epochs": args.epochs}
    if args.seed is not None:
        record["schedule"]["seed"] = args.seed
    if args.backbone:
        record["schedule"]["backbone"] = args.backbone
    if args.output_stride:
        record["schedule"]["output_stride"] = args.output_stride
    if args.dilated:
        record["schedule"]["dilated"] = True
    if args.device != "cpu":
        record["schedule"]["device"] = record["train_device"]
    done = (record.get("precise_bn") or {}).get("batches_requested", 0)
    if done != args.precise_bn:  # statistics re-estimated in place cannot be undone by a resume
        raise RuntimeError(f"{ckpt} has BatchNorm statistics re-estimated on {done} batches, not {args.precise_bn}; "
                           "use --retrain for a run without")
    return record


def markdown(records: list[dict]) -> str:
    return markdown_table([{"Method": r["variant"], **{h: f"{r['metrics'][k]:.2f}" for k, h in COLUMNS},
                            "Train time (min)": f"{r['train_seconds'] / 60:.1f}"} for r in records])


def cpu_of(record: dict) -> str:
    """The CPU a row was trained on, with the level its PyTorch kernels dispatch at when recorded."""
    info = record.get("machine") or {}
    capability = info.get("cpu_capability")
    return info.get("cpu", "unknown CPU") + (f", {capability}" if capability else "")


def other_cpu(a: dict, b: dict) -> bool:
    """Were two rows trained on CPUs known to differ (by name, or by dispatch level where both record it)?"""
    ma, mb = a.get("machine") or {}, b.get("machine") or {}
    ca, cb = ma.get("cpu_capability"), mb.get("cpu_capability")
    return ma.get("cpu") != mb.get("cpu") or (ca is not None and cb is not None and ca != cb)


def row_back(old: dict | None, new: dict) -> str:
    """One line: did this run give back the row it replaces (the issue's check of the table)?

    The same weights (SHA-256 of the state dict) settle it; rows written before records carried
    that hash are compared by their metrics. Another CPU is named, since the same seed trains to
    other weights where PyTorch's kernels dispatch at another level (METHODS.md, "Reproducibility
    across machines"): there a row comes back within the test sample's noise, not to the digit."""
    name = new["variant"]
    if old is None:
        return f"{name}: a new row (none to compare with)"
    same_weights = old.get("weights_sha256") is not None and old.get("weights_sha256") == new.get("weights_sha256")
    moved = [(h, old["metrics"][k], new["metrics"][k]) for k, h in COLUMNS if old["metrics"][k] != new["metrics"][k]]
    if not moved:
        if same_weights:
            return f"{name}: the row came back: the same weights"
        why = "the old row has no weights hash" if old.get("weights_sha256") is None else "other weights"
        return f"{name}: the row came back: the same metrics ({why})"
    line = f"{name}: the row differs from the one it replaces: " + ", ".join(
        f"{h} {a:.2f} -> {b:.2f} ({b - a:+.2f})" for h, a, b in moved)
    if same_weights:
        line += "; the weights are the same, so the scoring changed"
    elif other_cpu(old, new):
        line += (f"; that row was trained on {cpu_of(old)} (scored at commit {str(old.get('commit', '?'))[:8]}), this one on "
                 f"{cpu_of(new)}: another CPU trains the same seed to other weights (benchmarks/METHODS.md, "
                 "\"Reproducibility across machines\")")
    return line


def existing_rows(path: Path) -> list[dict]:
    """The rows already in a table's file, none if it does not exist yet. Read again before each write,
    so that rows another run of the command wrote meanwhile are kept."""
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())["records"]
        if not all(isinstance(r, dict) and "variant" in r for r in rows):
            raise ValueError("a record without a variant")
        return rows
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"no {exc} key" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{path} is not a table this command writes ({detail})") from exc


def merge(old: list[dict], new: list[dict], order: list[str]) -> list[dict]:
    by_name = {r["variant"]: r for r in old}
    by_name.update({r["variant"]: r for r in new})
    return sorted(by_name.values(), key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order))


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.runinfo import command_line

    args = build_parser().parse_args(argv)
    table = TABLES[args.table]
    names = args.only or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"error: unknown row(s) {', '.join(unknown)} for --table {args.table}; known: {', '.join(table)}",
              file=sys.stderr)
        return 2
    if not Path(args.data_root).is_dir():
        print(f"error: dataset folder {args.data_root} not found", file=sys.stderr)
        return 2
    stem = "cub50_methods" if args.table == "main" else f"cub50_{args.table}"
    default_out = f"{stem}{split_suffix(args.split)}.json"
    out = Path(args.output or Path("benchmarks/results") / default_out)
    try:
        existing_rows(out)  # before any training: a file the rows cannot be merged into would lose them
    except ValueError as exc:
        print(f"error: {exc}; give another --output", file=sys.stderr)
        return 2
    for name in names:
        try:
            run_table, run_name = SAME_RUN.get((args.table, name), (args.table, name))
            record = train_and_evaluate(name, table[name], args, Path(args.runs) / run_table / run_name)
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            print(f"error: {name} failed ({exc}); the rows already written are kept", file=sys.stderr)
            return 1
        record["table_command"] = command_line("benchmarks.methods", argv)
        if (args.table, name) in NOTES:
            record["note"] = NOTES[(args.table, name)]
        old = existing_rows(out)
        print(row_back(next((r for r in old if r["variant"] == name), None), record), file=sys.stderr, flush=True)
        records = merge(old, [record], list(table))
        atomic_write_json(out, {"records": records, "table_markdown": markdown(records)})
        print(markdown(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
