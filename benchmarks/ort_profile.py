"""Where ONNX Runtime spends its time: per-operator-type totals from ORT's own profiler."""
from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def profile_onnx(path: str | Path, batch: int = 1, runs: int = 30, threads: int | None = None) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime's own exception types: a missing or corrupt file, one line
            raise ValueError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None
        size = sess.get_inputs()[0].shape[-1]
        x = np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)
        for _ in range(runs):
            sess.run(None, {"images": x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] += e["dur"] / 1e3 / runs
            counts[op] += 1
    total = sum(by_op.values())
    ops = sorted(by_op.items(), key=lambda kv: -kv[1])
    return {"model": Path(path).name, "batch": batch, "runs": runs, "total_ms_per_run": total,
            "by_op_type_ms": {k: round(v, 4) for k, v in ops},
            "by_op_type_share": {k: round(v / total, 4) for k, v in ops},
            "kernel_calls_per_run": {k: counts[k] // runs for k, _ in ops}}
