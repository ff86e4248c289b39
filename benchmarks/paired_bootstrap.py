"""Is a method's lead over the reference bigger than the noise of the test sample? Paired
percentile bootstrap over the test images (wsol_edge/metrics/bootstrap.py) of the per-image tables
``python -m wsol_edge.evaluate --per-image`` writes: every model's metrics with 95% intervals, and
every model's difference to the reference with its interval and the share of resamples in which it
is above zero. Test-sample noise only: seed-to-seed spread of training comes on top.
``python -m benchmarks.paired_bootstrap --reference runs/methods_8ep/main/cam/per_image.npz --compare runs/methods_8ep/main/{has,icl}/per_image.npz --output benchmarks/results/cub50_methods_8ep_bootstrap.json``"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wsol_edge.argtypes import non_negative_int, open_unit_interval, output_file, positive_int

from .report import markdown_grid

LABELS = {"max_box_acc_v2": "MaxBoxAccV2", "gt_known_loc": "GT-known Loc", "top1_loc": "Top-1 Loc",
          "top1_cls": "Top-1 Cls"}


def named_path(text: str) -> tuple[str, str]:
    """``NAME=PATH``, or a PATH named by its folder (runs/<table>/<name>/per_image.npz -> name)."""
    name, sep, path = text.partition("=")
    return (name, path) if sep else (Path(text).parent.name or text, text)


# Copied from the per-image file into every model row: which weights, from which code. A file
# written before weights_sha256 existed gives null there.
PROVENANCE_KEYS = ("method", "checkpoint", "checkpoint_sha256", "weights_sha256", "commit")


def load(name: str, path: str) -> dict:
    from wsol_edge.evaluation import read_per_image
    from wsol_edge.metrics.bootstrap import metric_samples

    tables, image_ids, info = read_per_image(path)
    observed = {k: float(v[0]) for k, v in metric_samples(tables, np.ones((1, len(image_ids)))).items()}
    # The tables must give back the metrics evaluate reported: same definitions, nothing lost on the way.
    for key, value in observed.items():
        reported = (info.get("metrics") or {}).get(key)
        if reported is not None and abs(reported - value) > 1e-9:
            raise ValueError(f"{path}: {key} recomputed from the tables is {value}, the evaluation reported {reported}")
    return {"name": name, "path": path, "tables": tables, "image_ids": image_ids, "info": info, "observed": observed,
            "provenance": {k: info.get(k) for k in PROVENANCE_KEYS}}


def summary(samples: np.ndarray, observed: float, confidence: float) -> dict:
    from wsol_edge.metrics.bootstrap import interval

    return {"observed": observed, f"ci{round(confidence * 100)}": interval(samples, confidence),
            "std": float(samples.std(ddof=1)) if len(samples) > 1 else 0.0}


def markdown(reference: str, rows: list[dict], differences: list[dict], ci_key: str) -> str:
    """Own MaxBoxAccV2 and GT-known Loc, and each one's difference to the reference, with intervals."""
    def cell(d: dict | None, signed: bool) -> str:
        if d is None:
            return "–"
        f = "{:+.2f}" if signed else "{:.2f}"
        return f"{f.format(d['observed'])} [{f.format(d[ci_key][0])}, {f.format(d[ci_key][1])}]"

    by_name = {d["model"]: d["metrics"] for d in differences}
    head = ["Method"]
    for key in ("max_box_acc_v2", "gt_known_loc"):
        head += [f"{LABELS[key]} [{ci_key}]", f"minus {reference} [{ci_key}]", "resamples above 0 (%)"]
    table = []
    for row in rows:
        cells = [row["name"]]
        for key in ("max_box_acc_v2", "gt_known_loc"):
            d = by_name.get(row["name"], {}).get(key)
            cells += [cell(row["metrics"].get(key), False), cell(d, True),
                      f"{d['share_of_resamples_above_zero']:.1f}" if d else "–"]
        table.append(cells)
    return markdown_grid(head, table)


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.metrics.bootstrap import metric_samples, resample_counts
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.paired_bootstrap", description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", required=True, metavar="[NAME=]NPZ", help="per-image file of the reference model")
    p.add_argument("--compare", nargs="+", required=True, metavar="[NAME=]NPZ", help="per-image files to compare")
    p.add_argument("--resamples", type=positive_int, default=2000)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--confidence", type=open_unit_interval, default=0.95)
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)
    named = [named_path(t) for t in [args.reference, *args.compare]]
    names = [n for n, _ in named]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # rows and differences are keyed by name: two models of one name would overwrite each other
        p.error(f"two models named {', '.join(twice)}; name them with NAME=NPZ")
    models = [load(*nt) for nt in named]
    ref = models[0]
    for m in models[1:]:
        if m["image_ids"] != ref["image_ids"]:
            raise ValueError(f"{m['path']} and {ref['path']} were not evaluated on the same images in the same order")
        if not np.array_equal(m["tables"]["cam_thresholds"], ref["tables"]["cam_thresholds"]):
            raise ValueError(f"{m['path']} and {ref['path']} use different CAM thresholds")
    counts = resample_counts(len(ref["image_ids"]), args.resamples, args.seed)
    samples = {m["name"]: metric_samples(m["tables"], counts) for m in models}
    ci_key = f"ci{round(args.confidence * 100)}"
    rows = [{"name": m["name"], "per_image_file": m["path"],
             **m["provenance"],
             "metrics": {k: summary(v, m["observed"][k], args.confidence) for k, v in samples[m["name"]].items()}}
            for m in models]
    differences = []
    for m in models[1:]:
        common = samples[m["name"]].keys() & samples[ref["name"]].keys()
        metrics = {}
        for key in [k for k in LABELS if k in common]:
            diff = samples[m["name"]][key] - samples[ref["name"]][key]
            metrics[key] = {**summary(diff, m["observed"][key] - ref["observed"][key], args.confidence),
                            "share_of_resamples_above_zero": float((diff > 0).mean() * 100)}
        differences.append({"model": m["name"], "reference": ref["name"], "metrics": metrics})
    info = ref["info"]
    table = markdown(ref["name"], rows, differences, ci_key)
    atomic_write_json(args.output, {
        "kind": "bootstrap", "dataset": info.get("dataset"), "split": info.get("split"),
        "num_images": len(ref["image_ids"]), "protocol": info.get("protocol"),
        "method": "paired percentile bootstrap over test images (the same draws for every model); the best CAM "
                  "threshold is chosen again in every resample",
        "resamples": args.resamples, "seed": args.seed, "confidence": args.confidence, "reference": ref["name"],
        "models": rows, "differences": differences, "table_markdown": table,
        "command": command_line("benchmarks.paired_bootstrap", argv), "commit": git_commit(),
        "machine": machine_info()})
    print(table)
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
