"""Reports from result records: CSV, a Markdown table, and plots (matplotlib, PNG)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from wsol_edge.atomic import atomic_write, atomic_write_bytes

from .speed import STAGES


def speed_rows(records: list[dict]) -> list[dict]:
    """One row per speed record; every row has the same stage columns (GPU rows split inference
    into h2d, inference, d2h; other rows leave those two empty)."""
    speed = [r for r in records if r.get("kind") == "speed"]
    stages = [k for k in STAGES if any(k in r["stages_ms"] for r in speed)]
    rows = []
    for r in speed:
        rows.append({"model_file": r.get("model_file", ""), "backend": r["backend"], "precision": r["precision"],
                     "device": r["device"], "batch": r["batch"],
                     "images_per_s": round(r["images_per_s"], 2), "latency_median_ms": round(r["latency_ms"]["median"], 2),
                     "latency_p90_ms": round(r["latency_ms"]["p90"], 2), "latency_p99_ms": round(r["latency_ms"]["p99"], 2),
                     **{f"{k}_ms": round(r["stages_ms"][k], 3) if k in r["stages_ms"] else "" for k in stages}})
    return rows


def write_csv(path: str | Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, lambda f: f.write(buf.getvalue()), binary=False)


def markdown_grid(header: list[str], rows: list[list]) -> str:
    """A markdown table from a header and rows of cells (for headers that repeat a name)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    return markdown_grid(keys, [[r[k] for k in keys] for r in rows])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_latency_vs_batch(path: str | Path, rows: list[dict]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(f"{r['backend']} {r['precision']} ({r.get('model_file', '')})", []).append(r)
    for name, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["batch"])
        ax.plot([r["batch"] for r in rs], [r["latency_median_ms"] / r["batch"] for r in rs], marker="o", label=name)
    ax.set_xlabel("batch")
    ax.set_ylabel("median end-to-end ms per image")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


ACCURACY_BARS = (("top1_cls", "Top-1 Cls"), ("gt_known_loc", "GT-known Loc"), ("max_box_acc_v2", "MaxBoxAccV2"))


def precision_label(record: dict) -> str:
    """``backend precision[ variant]``: the INT8 flavours of one backend differ only in the variant."""
    return " ".join(str(v) for v in (record["backend"], record["precision"], record.get("variant")) if v)


def plot_accuracy_vs_precision(path: str | Path, records: list[dict]) -> None:
    """Grouped bars: one group per metric, one bar per backend/precision record."""
    recs = [r for r in records if r.get("kind") == "accuracy"]
    if not recs:
        raise ValueError("no accuracy records to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(recs)
    for i, r in enumerate(recs):
        xs = [j + (i - (len(recs) - 1) / 2) * width for j in range(len(ACCURACY_BARS))]
        vals = [r["metrics"][k] for k, _ in ACCURACY_BARS]
        bars = ax.bar(xs, vals, width, label=precision_label(r))
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    ax.set_xticks(range(len(ACCURACY_BARS)), [h for _, h in ACCURACY_BARS])
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(f"{recs[0].get('dataset', '')} {recs[0].get('split', '')}: accuracy by backend and precision")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save(fig, path)
