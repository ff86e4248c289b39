"""How much do the methods' rows move between training seeds? From result files of
``python -m benchmarks.methods`` run with the same schedule and different ``--seed``: each
method's metrics per seed, their mean and sample standard deviation, and each method's margin
over the reference (CAM) trained with the same seed.
``python -m benchmarks.seed_spread benchmarks/results/cub50_methods_12ep.json benchmarks/results/cub50_methods_12ep_seed{1,2}.json --output benchmarks/results/cub50_methods_12ep_seeds.json``
Result files of ``wsol_edge.evaluate`` are given as ``NAME=FILE`` (their seed is read from the
checkpoint's training command), so two configurations of one method can be set side by side."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from wsol_edge.argtypes import output_file

from .report import markdown_table
from .summary import records

REPO = Path(__file__).resolve().parents[1]
METRICS = {"top1_cls": "Top-1 Cls", "top1_loc": "Top-1 Loc", "gt_known_loc": "GT-known Loc",
           "max_box_acc_v2": "MaxBoxAccV2"}


def seed_of(record: dict) -> int:
    """The training seed of a row: ``schedule.seed``, or the seed ``wsol_edge.train`` takes from the
    config the row names (rows run before ``--seed`` existed trained with the config's)."""
    schedule = record.get("schedule") or {}
    if "seed" in schedule:
        return int(schedule["seed"])
    config = schedule.get("config")
    # Configs are named relative to the repository root, where the rows were run.
    for path in ([Path(config), REPO / config] if config else []):
        if path.is_file():
            from wsol_edge.train import build_parser, parse_args

            return int(parse_args(build_parser(), ["--config", str(path)]).seed)
    # Rows of wsol_edge.evaluate name the training command of their checkpoint instead of a schedule.
    seed = re.search(r"(?:^|\s)--seed[= ](\d+)(?:\s|$)", record.get("train_command") or "")
    if seed:
        return int(seed.group(1))
    raise ValueError(f"row {record.get('variant') or record.get('method')} names no seed, no readable config "
                     "and no train_command with --seed")


def rows_by_seed(files: list[str], keep: set[str] | None = None) -> dict[int, dict[str, dict]]:
    """{seed: {variant: record}}; every row must share one schedule apart from its seed. With ``keep``,
    only the rows of those names are read (so files that share other rows can be combined). A file
    given as ``NAME=PATH`` holds one row, named NAME: so rows of ``wsol_edge.evaluate``, which all
    carry their method's name, can be told apart (two configurations of one method, say)."""
    out: dict[int, dict[str, dict]] = {}
    schedule_seen = where_seen = None
    for entry in files:
        given_name, sep, path = entry.partition("=")
        if not sep:
            given_name, path = None, entry
        elif not given_name:
            raise ValueError(f"{entry}: an empty NAME before '='")
        try:
            data = json.loads(Path(path).read_text())
        except ValueError as exc:  # JSON and UTF-8 errors
            raise ValueError(f"{path}: not a JSON result file ({exc})") from None
        rows = [r for r in records(data) if r.get("kind") == "accuracy"]
        if given_name is not None and len(rows) != 1:
            raise ValueError(f"{path}: {len(rows)} accuracy rows, but a file named {given_name}= must hold one")
        for r in rows:
            # one test set, one protocol: otherwise the means compare nothing
            where = (r.get("dataset"), r.get("split"), r.get("protocol"))
            if where_seen is None:
                where_seen = where
            elif where != where_seen:
                raise ValueError(f"{path}: rows on dataset/split/protocol {where}, others on {where_seen}")
            # A row of wsol_edge.evaluate has no schedule (its training is in train_command), so it is
            # held to the others only by dataset, split and protocol.
            if r.get("schedule") is not None:
                schedule = {k: v for k, v in r["schedule"].items() if k != "seed"}
                if schedule_seen is None:
                    schedule_seen = schedule
                elif schedule != schedule_seen:
                    raise ValueError(f"{path}: row {r.get('variant')} has schedule {schedule}, others {schedule_seen}")
            name = given_name or r.get("variant") or r["method"]
            if keep is not None and name not in keep:
                continue
            seed = seed_of(r)
            if name in out.setdefault(seed, {}):
                raise ValueError(f"{path}: a second {name} row for seed {seed}")
            out[seed][name] = r
    if not out:
        raise ValueError("no accuracy rows in " + ", ".join(files))
    missing = sorted((keep or set()) - {n for rows in out.values() for n in rows})
    if missing:
        raise ValueError(f"no row named {', '.join(missing)} in " + ", ".join(files))
    return out


def spread(by_seed: dict[int, dict[str, dict]], reference: str) -> list[dict]:
    names = list(dict.fromkeys(n for rows in by_seed.values() for n in rows))
    result = []
    for name in names:
        seeds = sorted(s for s, rows in by_seed.items() if name in rows)
        entry = {"name": name, "seeds": seeds, "metrics": {}}
        for key in METRICS:
            values = np.array([by_seed[s][name]["metrics"][key] for s in seeds], dtype=np.float64)
            margins = {str(s): by_seed[s][name]["metrics"][key] - by_seed[s][reference]["metrics"][key]
                       for s in seeds if reference in by_seed[s]}
            entry["metrics"][key] = {
                "per_seed": dict(zip(map(str, seeds), values.tolist())), "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                f"minus_{reference}_per_seed": margins,
                f"minus_{reference}_mean": float(np.mean(list(margins.values()))) if margins else None}
        result.append(entry)
    return result


def markdown(rows: list[dict], reference: str) -> str:
    def cells(r: dict) -> dict:
        out = {"Method": r["name"], "seeds": ", ".join(map(str, r["seeds"]))}
        for key, label in METRICS.items():
            m = r["metrics"][key]
            out[f"{label} mean (sd)"] = f"{m['mean']:.2f}" + (f" ({m['std']:.2f})" if m["std"] is not None else "")
        is_ref = r["name"] == reference
        for key, label, mean_label in (("max_box_acc_v2", "MaxBoxAccV2", "mean"), ("gt_known_loc", "GT-known", "mean ")):
            m = r["metrics"][key]
            per, mean = m[f"minus_{reference}_per_seed"], m[f"minus_{reference}_mean"]
            out[f"{label} minus {reference}, per seed"] = "–" if is_ref else " / ".join(f"{v:+.2f}" for v in per.values())
            out[mean_label] = "–" if is_ref or mean is None else f"{mean:+.2f}"
        return out

    return markdown_table([cells(r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.seed_spread", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", metavar="[NAME=]RESULT",
                   help="result files of benchmarks.methods (one schedule, any seeds) or, named, of wsol_edge.evaluate")
    p.add_argument("--reference", default="cam", help="the row each method's margin is taken against")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="these rows only (and the reference): files that repeat other rows can then be combined")
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)

    by_seed = rows_by_seed(args.results, {*args.only, args.reference} if args.only else None)
    rows = spread(by_seed, args.reference)
    first = next(iter(next(iter(by_seed.values())).values()))
    table = markdown(rows, args.reference)
    atomic_write_json(args.output, {
        "kind": "seed_spread", "dataset": first.get("dataset"), "split": first.get("split"),
        "protocol": first.get("protocol"), "schedule": {k: v for k, v in first.get("schedule", {}).items() if k != "seed"},
        "reference": args.reference, "sources": args.results, "methods": rows, "table_markdown": table,
        "note": "sd is the sample standard deviation over training seeds; each seed's rows are one run each",
        "command": command_line("benchmarks.seed_spread", argv), "commit": git_commit(), "machine": machine_info()})
    print(table)
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
