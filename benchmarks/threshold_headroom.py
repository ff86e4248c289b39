"""How much of a map's localisation does one global CAM threshold leave on the table? From the
per-image tables ``python -m wsol_edge.evaluate --per-image`` writes: GT-known Loc at the best
global threshold (the protocol's figure), at each image's own best threshold (an upper bound for
any rule that only picks a threshold per image on this map, boxes by the largest contour), and, for
the images the global threshold misses but some threshold would get, whether the global box was
too large (the image's best threshold is higher: background lit) or too small (lower: the
partial-object failure erasing methods are built against).
``python -m benchmarks.threshold_headroom runs/methods_12ep_seed1/main/{cam,has,icl}/per_image.npz --output benchmarks/results/cub50_threshold_headroom_12ep_seed1.json``"""
from __future__ import annotations

import argparse

import numpy as np

from .report import markdown_table

IOU = 0.5


def headroom(ious_box: np.ndarray, cam_thresholds: np.ndarray) -> dict:
    """The figures of one model from its (images, thresholds) IoU table. The global threshold is the
    first maximum, as ``LocalizationScorer.compute`` picks it; an image's own best threshold is the
    first threshold of its highest IoU."""
    ious = np.asarray(ious_box, dtype=np.float64)
    taus = np.asarray(cam_thresholds, dtype=np.float64)
    if ious.ndim != 2 or ious.shape[1] != len(taus) or len(ious) == 0:
        raise ValueError(f"IoU table of shape {ious.shape} does not match {len(taus)} CAM thresholds")
    hits = ious >= IOU
    g = int(hits.mean(0).argmax())
    at_global = hits[:, g]
    reachable = hits.any(1)
    own = ious.argmax(1)
    missed = reachable & ~at_global
    n = len(ious)
    pct = lambda mask: float(mask.sum() * 100.0 / n)  # noqa: E731
    return {
        "num_images": n,
        "global_threshold": float(taus[g]),
        "gt_known_loc_global_threshold": pct(at_global),
        "gt_known_loc_own_threshold": pct(reachable),
        "mean_iou_global_threshold": float(ious[:, g].mean()),
        "mean_iou_own_threshold": float(ious.max(1).mean()),
        "own_threshold_quantiles": {q: float(np.quantile(taus[own], int(q) / 100)) for q in ("10", "50", "90")},
        "missed_but_reachable": {"box_too_large": pct(missed & (own > g)), "box_too_small": pct(missed & (own < g))},
        "unreachable": pct(~reachable),
    }


def markdown(rows: list[dict]) -> str:
    def cells(r: dict) -> dict:
        q, missed = r["own_threshold_quantiles"], r["missed_but_reachable"]
        return {"Model": r["name"], "global tau": f"{r['global_threshold']:.2f}",
                "GT-known Loc": f"{r['gt_known_loc_global_threshold']:.2f}",
                "at each image's own tau": f"{r['gt_known_loc_own_threshold']:.2f}",
                "missed: box too large": f"{missed['box_too_large']:.2f}",
                "missed: box too small": f"{missed['box_too_small']:.2f}",
                "no tau reaches IoU 0.5": f"{r['unreachable']:.2f}",
                "own tau p10 / p50 / p90": f"{q['10']:.2f} / {q['50']:.2f} / {q['90']:.2f}"}

    return markdown_table([cells(r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    from .paired_bootstrap import load, named_path

    p = argparse.ArgumentParser(prog="python -m benchmarks.threshold_headroom", description=__doc__.split("\n\n")[0])
    p.add_argument("per_image", nargs="+", metavar="[NAME=]NPZ", help="per-image files of wsol_edge.evaluate")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)

    rows, info = [], None
    for text in args.per_image:
        m = load(*named_path(text))  # checks the tables give back the metrics the evaluation reported
        info = info or m["info"]
        r = {"name": m["name"], "per_image_file": m["path"],
             **m["provenance"],
             **headroom(m["tables"]["ious_box"], m["tables"]["cam_thresholds"])}
        if abs(r["gt_known_loc_global_threshold"] - m["observed"]["gt_known_loc"]) > 1e-9:
            raise ValueError(f"{m['path']}: GT-known Loc {r['gt_known_loc_global_threshold']} here, "
                             f"{m['observed']['gt_known_loc']} in its evaluation")
        rows.append(r)
    table = markdown(rows)
    atomic_write_json(args.output, {
        "kind": "threshold_headroom", "dataset": info.get("dataset"), "split": info.get("split"),
        "protocol": info.get("protocol"), "iou_threshold": IOU, "box_rule": "largest contour (GT-known Loc's)",
        "models": rows, "table_markdown": table, "command": command_line("benchmarks.threshold_headroom", argv),
        "commit": git_commit(), "machine": machine_info()})
    print(table)
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
