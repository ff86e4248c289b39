"""How much of a map's localisation does one global CAM threshold leave on the table? From the
per-image tables ``python -m wsol_edge.evaluate --per-image`` writes: GT-known Loc at the best
global threshold (the protocol's figure), at each image's own best threshold (an upper bound for
any rule that only picks a threshold per image on this map, boxes by the largest contour), and, for
the images the global threshold misses but some threshold would get, whether the global box was
too large (the image's best threshold is higher: background lit) or too small (lower: the
partial-object failure erasing methods are built against).
``python -m benchmarks.threshold_headroom runs/methods_12ep_seed1/main/{cam,has,icl}/per_image.npz --output benchmarks/results/cub50_threshold_headroom_12ep_seed1.json``

With ``--data-root`` (the dataset the tables were scored on) it also asks which images want which
threshold: the rank correlation of each image's own best threshold with its object's size (the largest
GT box's share of the image, which resizing to the square input keeps), and the same figures for the
smallest, middle and largest third of the objects. If one third wants a lower threshold and another a
higher one, no single threshold serves both, however the maps are normalised image by image."""
from __future__ import annotations

import argparse

import numpy as np

from wsol_edge.argtypes import output_file

from .report import markdown_table

IOU = 0.5


def global_threshold_index(ious: np.ndarray) -> int:
    """The protocol's one threshold for all images: the first with the most hits at IoU 0.5, as
    ``LocalizationScorer.compute`` picks it."""
    return int((ious >= IOU).mean(0).argmax())


def headroom(ious_box: np.ndarray, cam_thresholds: np.ndarray, global_index: int | None = None) -> dict:
    """The figures of one model from its (images, thresholds) IoU table. The global threshold is
    ``global_threshold_index``'s, unless ``global_index`` gives it (a subset of the images scored at
    the threshold of all of them); an image's own best threshold is the first threshold of its
    highest IoU."""
    ious = np.asarray(ious_box, dtype=np.float64)
    taus = np.asarray(cam_thresholds, dtype=np.float64)
    if ious.ndim != 2 or ious.shape[1] != len(taus) or len(ious) == 0:
        raise ValueError(f"IoU table of shape {ious.shape} does not match {len(taus)} CAM thresholds")
    hits = ious >= IOU
    g = global_threshold_index(ious) if global_index is None else global_index
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


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties given their mean rank (Spearman's convention; own thresholds tie often on a
    0.01 grid). Not scipy's rankdata: scipy is a dev-only dependency here."""
    x = np.asarray(x, dtype=np.float64)
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    _, tie_group, tie_count = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(tie_group, ranks) / tie_count)[tie_group]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Rank correlation; None when either side is constant (no ranking to correlate)."""
    ra, rb = average_ranks(a), average_ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def by_object_size(ious_box: np.ndarray, cam_thresholds: np.ndarray, box_area: np.ndarray) -> dict:
    """``headroom``'s figures for the smallest, middle and largest third of the objects (``box_area``:
    each image's largest GT box as a share of the image; thirds by rank, so each has n/3 images, the
    global threshold staying the one of all images), the median own threshold of each third's
    reachable images, and the rank correlation of each reachable image's own best threshold with its
    object's size."""
    ious = np.asarray(ious_box, dtype=np.float64)
    area = np.asarray(box_area, dtype=np.float64)
    if len(area) != len(ious):
        raise ValueError(f"{len(area)} object sizes for {len(ious)} images")
    if len(ious) < 3:
        raise ValueError(f"thirds by object size need at least 3 scored images, not {len(ious)}")
    headroom(ious, cam_thresholds)  # its checks of the table's shape
    taus = np.asarray(cam_thresholds, dtype=np.float64)
    g = global_threshold_index(ious)
    reachable, own = (ious >= IOU).any(1), ious.argmax(1)
    thirds = []
    for part in np.array_split(np.argsort(area, kind="stable"), 3):
        third = headroom(ious[part], taus, global_index=g)
        reach = reachable[part]
        thirds.append({
            "num_images": third["num_images"], "box_area_range": [float(area[part].min()), float(area[part].max())],
            **{k: third[k] for k in ("gt_known_loc_global_threshold", "gt_known_loc_own_threshold")},
            "own_threshold_median": float(np.median(taus[own[part][reach]])) if reach.any() else None,
            **{k: third[k] for k in ("missed_but_reachable", "unreachable")}})
    return {"spearman_own_threshold_vs_box_area": spearman(taus[own[reachable]], area[reachable]),
            "thirds_by_box_area": thirds}


def box_areas(dataset: str, data_root: str, split: str, image_ids: list[str]) -> np.ndarray:
    """Each image's largest GT box as a share of its image, in the order of ``image_ids``."""
    from wsol_edge.data import open_dataset

    samples = {s.image_id: s for s in open_dataset(dataset, data_root, split)}
    missing = [i for i in image_ids if i not in samples]
    if missing:
        raise ValueError(f"{len(missing)} scored images are not in {data_root} ({split}), e.g. {missing[0]}")
    out = []
    for image_id in image_ids:
        s = samples[image_id]
        w, h = s.size if s.size else s.load().shape[1::-1]
        b = np.asarray(s.boxes, dtype=np.float64)
        out.append(float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).max() / (w * h)))
    return np.asarray(out)


def size_markdown(rows: list[dict]) -> str:
    table = []
    for r in rows:
        for i, t in enumerate(r["by_object_size"]["thirds_by_box_area"]):
            lo, hi = t["box_area_range"]
            med = t["own_threshold_median"]
            table.append({"Model": r["name"], "object size third": ("small", "middle", "large")[i],
                          "box share of image": f"{lo:.2f}-{hi:.2f}",
                          "own tau median": "–" if med is None else f"{med:.2f}",
                          "GT-known Loc": f"{t['gt_known_loc_global_threshold']:.2f}",
                          "at each image's own tau": f"{t['gt_known_loc_own_threshold']:.2f}",
                          "missed: box too large": f"{t['missed_but_reachable']['box_too_large']:.2f}",
                          "missed: box too small": f"{t['missed_but_reachable']['box_too_small']:.2f}"})
    return markdown_table(table)


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
    p.add_argument("--output", type=output_file, required=True)
    p.add_argument("--data-root", help="the dataset the tables were scored on: adds the figures by object size")
    p.add_argument("--dataset", default="cub", help="its kind, as for wsol_edge.evaluate (default: cub)")
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
        if args.data_root:
            split = m["info"].get("split") or "test"
            areas = box_areas(args.dataset, args.data_root, split, m["image_ids"])
            r["by_object_size"] = by_object_size(m["tables"]["ious_box"], m["tables"]["cam_thresholds"], areas)
        rows.append(r)
    table = markdown(rows)
    if args.data_root:
        rho = ", ".join(f"{r['name']} {r['by_object_size']['spearman_own_threshold_vs_box_area']:+.2f}"
                        if r["by_object_size"]["spearman_own_threshold_vs_box_area"] is not None else f"{r['name']} –"
                        for r in rows)
        table += f"\n\nBy object size (rank correlation of own tau with box share: {rho}):\n\n{size_markdown(rows)}"
    atomic_write_json(args.output, {
        "kind": "threshold_headroom", "dataset": info.get("dataset"), "split": info.get("split"),
        "protocol": info.get("protocol"), "iou_threshold": IOU, "box_rule": "largest contour (GT-known Loc's)",
        "data_root": args.data_root, "models": rows, "table_markdown": table,
        "command": command_line("benchmarks.threshold_headroom", argv),
        "commit": git_commit(), "machine": machine_info()})
    print(table)
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
