"""Reports from result records: CSV, a Markdown table, and plots (matplotlib, PNG)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from wsol_edge.atomic import atomic_write, atomic_write_bytes


def speed_rows(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        if r.get("kind") != "speed":
            continue
        rows.append({"model_file": r.get("model_file", ""), "backend": r["backend"], "precision": r["precision"],
                     "device": r["device"], "batch": r["batch"],
                     "images_per_s": round(r["images_per_s"], 2), "latency_median_ms": round(r["latency_ms"]["median"], 2),
                     "latency_p90_ms": round(r["latency_ms"]["p90"], 2), "latency_p99_ms": round(r["latency_ms"]["p99"], 2),
                     **{f"{k}_ms": round(v, 3) for k, v in r["stages_ms"].items()}})
    return rows


def write_csv(path: str | Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, lambda f: f.write(buf.getvalue()), binary=False)


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def plot_latency_vs_batch(path: str | Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
