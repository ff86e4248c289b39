"""CUDA kernels vs the CPU reference vs cupyx.scipy.ndimage.label, for batch 1, 8, 64 at 224^2 and
448^2 (issue 5's benchmark).

Workloads per (size, batch):
  ``cam_box``   features [B, 1280, S/16, S/16] -> CAM of the given class -> box at one threshold
                (what the runtime does per frame);
  ``cam_box_graph``  the same captured once as a CUDA graph, with the class ids already on the
                GPU (as an engine's class_ids output is): one launch + the boxes' copy to the host
                per call; also its device time alone (``device_ms``: CUDA events around 50
                back-to-back replays), the floor a camera loop can reach;
  ``box_100``   raw CAMs -> boxes at the protocol's 100 thresholds (evaluation on the GPU).
The CPU reference is wsol_edge.postprocess (NumPy/OpenCV, the kernels' "most pixels" rule); the
GPU path is kernels/loader.py, with the inputs already on the GPU and the boxes copied back (each
timed call ends synchronised); cupyx is timed on ``cam_box``'s threshold + label + box stages
only, from the kernels' own u8 maps, so it does less work than the timed kernel path.

Before timing, the kernel boxes are compared with the CPU reference on the same inputs and the
mismatches recorded. ``--cpu-only`` measures the reference alone (this CPU machine's figures, which
the GPU run divides by with ``--cpu-reference FILE``: a ratio across machines, said as such).

``python -m benchmarks.kernels --cpu-only --output benchmarks/results/kernels_cpu_reference.json``
``python -m benchmarks.kernels --cpu-reference benchmarks/results/kernels_cpu_reference.json --output R.json``
``python -m benchmarks.kernels --rescore R.json --cpu-reference NEWER_CPU.json --output R2.json``
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid

import numpy as np

from wsol_edge.argtypes import output_file, positive_int

CHANNELS, CLASSES = 1280, 50


def inputs(batch: int, size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    hw = size // 16
    feats = np.maximum(rng.normal(size=(batch, CHANNELS, hw, hw)), 0).astype(np.float32)
    # a smooth object-like bump in a few channels, so the boxes are not all of noise
    yy, xx = np.indices((hw, hw))
    for b in range(batch):
        cy, cx, s = rng.uniform(0, hw, 2).tolist() + [rng.uniform(1, hw / 3)]
        feats[b, :64] += 4 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    weights = rng.normal(scale=0.05, size=(CLASSES, CHANNELS)).astype(np.float32)
    weights[:, :64] += 0.1
    return {"features": feats, "weights": weights, "class_ids": rng.integers(0, CLASSES, batch),
            "tau": 0.25, "taus": np.arange(0, 1, 0.01)}


def cpu_cams(x: dict) -> np.ndarray:
    return np.einsum("bc,bchw->bhw", x["weights"][x["class_ids"]], x["features"], optimize=True)


def cpu_cam_box(x: dict, size: int) -> np.ndarray:
    from benchmarks.cam_cases import reference_boxes

    return reference_boxes(cpu_cams(x), [x["tau"]], size)


def timed(fn, repeats: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    t = np.asarray(times)
    return {"median": float(np.median(t)), "p90": float(np.percentile(t, 90)), "p99": float(np.percentile(t, 99)),
            "repeats": repeats}


def label_boxes(u8, tau: float, xp, label, scatter_max, scatter_min):
    """Boxes [B, 4] of the largest 8-connected component of ``u8 > int(tau * max)`` per image, with
    an array module's own labelling (cupy + cupyx.scipy.ndimage.label on the GPU; NumPy + scipy
    in the tests, which hold it to the CPU reference). Ties go to the lowest label, i.e. the
    component whose first pixel comes first in raster order, as in the kernels."""
    B, size = u8.shape[0], u8.shape[-1]
    n = size * size
    structure = np.zeros((3, 3, 3), int)
    structure[1] = 1  # 8-connected inside an image, never across images
    cut = (tau * u8.reshape(B, -1).max(1).astype(xp.float64)).astype(xp.int32)
    labels, count = label(u8 > cut[:, None, None], structure=structure)
    count = int(count)
    flat = labels.ravel()
    area = xp.bincount(flat, minlength=count + 1)[1:]
    image_of = xp.zeros(count + 1, xp.int64)
    image_of[flat] = xp.repeat(xp.arange(B, dtype=xp.int64), n)
    key = area.astype(xp.int64) * (count + 1) + (count - xp.arange(1, count + 1))  # ties: lowest label
    best = xp.full(B, -1, xp.int64)
    scatter_max(best, image_of[1:], key)
    fg = xp.nonzero(flat)[0]
    lab, ys, xs = flat[fg], (fg % n) // size, fg % size
    lo_x, lo_y = xp.full(count + 1, size, xp.int64), xp.full(count + 1, size, xp.int64)
    hi_x, hi_y = xp.full(count + 1, -1, xp.int64), xp.full(count + 1, -1, xp.int64)
    scatter_min(lo_x, lab, xs)
    scatter_min(lo_y, lab, ys)
    scatter_max(hi_x, lab, xs)
    scatter_max(hi_y, lab, ys)
    root = xp.where(best >= 0, count - best % (count + 1), 0)
    boxes = xp.stack([lo_x[root], lo_y[root], xp.minimum(hi_x[root] + 1, size - 1),
                      xp.minimum(hi_y[root] + 1, size - 1)], 1)
    return xp.where((best >= 0)[:, None], boxes, 0)


def cupy_stage(kernels, x: dict, size: int):
    """A callable: ``label_boxes`` with cupyx.scipy.ndimage.label on the kernels' u8 maps of ``x``
    (left in the kernels' 'u8' buffer by a boxes() call)."""
    import cupy as cp
    import cupyx
    from cupyx.scipy import ndimage

    B = len(x["class_ids"])
    ptr = kernels._buffers["u8"][0]
    mem = cp.cuda.MemoryPointer(cp.cuda.UnownedMemory(ptr, B * size * size, kernels), 0)
    u8 = cp.ndarray((B, size, size), cp.uint8, mem)
    return lambda: label_boxes(u8, x["tau"], cp, ndimage.label, cupyx.scatter_max, cupyx.scatter_min).get()


def attach_cpu_reference(row: dict, workload: str, size: int, batch: int, cpu_ref: dict) -> None:
    """The speed-up over the CPU reference's record of the same work (cam_box_graph does cam_box's)."""
    ref = cpu_ref.get(("cam_box" if workload == "cam_box_graph" else workload, size, batch))
    if ref:
        row["speedup_over_cpu_reference"] = ref["us_per_image"] / row["us_per_image"]
        row["cpu_reference"] = {"us_per_image": ref["us_per_image"], "machine": ref["machine"], "run_id": ref["run_id"],
                                "commit": ref.get("commit"), "note": "another machine: a cross-machine ratio"}


def load_cpu_reference(path: str) -> dict:
    import json
    from pathlib import Path

    from benchmarks.summary import records as result_records

    records = result_records(json.loads(Path(path).read_text()))
    if not records or any(k not in r for r in records for k in ("workload", "input_size", "batch", "us_per_image")):
        raise ValueError(f"{path} is not a kernel benchmark result (python -m benchmarks.kernels --cpu-only)")
    return {(r["workload"], r["input_size"], r["batch"]): r for r in records}


def rescore(gpu_file: str, cpu_file: str, output: str, command: str) -> None:
    """A GPU run's speed-ups recomputed against another CPU reference run (no GPU needed): the
    GPU timings and their records stay as measured; only the ratios and the cpu_reference change."""
    import json
    from pathlib import Path

    from wsol_edge.atomic import atomic_write_json

    data = json.loads(Path(gpu_file).read_text())
    if not isinstance(data, dict) or not any(r.get("backend") == "cuda_kernels" for r in data.get("records") or []):
        raise ValueError(f"{gpu_file} is not a kernel benchmark result (no cuda_kernels records)")
    cpu_ref = load_cpu_reference(cpu_file)
    for r in data["records"]:
        if r.get("backend") == "cuda_kernels":
            attach_cpu_reference(r, r["workload"], r["input_size"], r["batch"], cpu_ref)
            r["rescored_by"] = command
    atomic_write_json(output, data)


def graph_device_ms(kernels, graph, stream: int, replays: int) -> float:
    """Device time per replay: CUDA events around ``replays`` back-to-back launches (the host
    enqueues them faster than the GPU runs them, so the gaps between replays are the GPU's own)."""
    rt = kernels.rt
    start, end = kernels._check(rt.cudaEventCreate()), kernels._check(rt.cudaEventCreate())
    for _ in range(5):
        graph.launch(stream)
    kernels._check(rt.cudaEventRecord(start, stream))
    for _ in range(replays):
        graph.launch(stream)
    kernels._check(rt.cudaEventRecord(end, stream))
    kernels._check(rt.cudaEventSynchronize(end))
    ms = kernels._check(rt.cudaEventElapsedTime(start, end)) / replays
    rt.cudaEventDestroy(start)
    rt.cudaEventDestroy(end)
    return float(ms)


def gpu_name() -> str:
    """The device the kernels ran on, from the CUDA runtime: with CUDA_VISIBLE_DEVICES it can differ
    from the first GPU nvidia-smi lists (machine_info's ``gpu``), so it replaces that entry."""
    from wsol_edge.cuda_runtime import cudart

    err, props = cudart().cudaGetDeviceProperties(0)
    return props.name.decode(errors="replace").strip("\x00") if int(err) == 0 else "unknown"


def main(argv: list[str] | None = None) -> int:
    from wsol_edge.atomic import atomic_write_json
    from wsol_edge.runinfo import command_line, git_commit, machine_info

    p = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=positive_int, nargs="+", default=[1, 8, 64])
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[224, 448])
    p.add_argument("--repeats", type=positive_int, default=50, help="timed calls per GPU measurement")
    p.add_argument("--cpu-repeats", type=positive_int, default=5)
    p.add_argument("--cpu-only", action="store_true", help="measure the CPU reference alone (no GPU needed)")
    p.add_argument("--cpu-reference", help="a --cpu-only result file to divide by (another machine's CPU)")
    p.add_argument("--rescore", metavar="GPU_RESULT",
                   help="recompute a GPU result's speed-ups against --cpu-reference (no GPU needed; writes --output)")
    p.add_argument("--output", type=output_file, required=True)
    args = p.parse_args(argv)
    import cv2

    from benchmarks.cam_cases import reference_boxes

    if args.rescore:
        if not args.cpu_reference:
            p.error("--rescore needs --cpu-reference")
        rescore(args.rescore, args.cpu_reference, args.output, command_line("benchmarks.kernels", argv))
        return 0
    cpu_ref = load_cpu_reference(args.cpu_reference) if args.cpu_reference else {}
    kernels = None
    if not args.cpu_only:
        from wsol_edge.kernels.loader import BoxKernels

        try:
            kernels = BoxKernels()
        except Exception as exc:  # noqa: BLE001 - any CUDA failure means: no usable GPU, said in one line
            raise SystemExit(f"error: no usable CUDA GPU ({exc}); use --cpu-only for the CPU reference") from None
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    machine = machine_info()
    machine["opencv_threads"] = cv2.getNumThreads()
    if kernels is not None:
        machine["gpu"] = gpu_name()
    records = []
    for size in args.sizes:
        for batch in args.batches:
            x = inputs(batch, size)
            cams = cpu_cams(x)
            base = {"kind": "speed", "model": f"kernels, efficientnet_lite0-like head ({CHANNELS} ch) at {size}",
                    "batch": batch, "input_size": size, "run_id": run_id}
            work = {"cam_box": lambda: cpu_cam_box(x, size),  # noqa: B023 - called inside this iteration
                    "box_100": lambda: reference_boxes(cams, x["taus"], size)}  # noqa: B023
            rows = {}
            if args.cpu_only:
                for name, fn in work.items():
                    lat = timed(fn, args.cpu_repeats, 1)
                    rows[name] = {"backend": "cpu_reference", "device": "cpu", "latency_ms": lat,
                                  "us_per_image": lat["median"] * 1e3 / batch}
            else:
                B, C, hw = batch, CHANNELS, size // 16
                feats_d = kernels._upload("bench_features", x["features"], 0)
                cams_d = kernels._buffer("bench_cams", B * hw * hw * 4)
                kernels.set_classifier(x["weights"])  # once per model, as a camera loop does
                kernels.cams(feats_d, x["class_ids"], (B, C, hw, hw), out=cams_d)
                gpu_cams = kernels._download(cams_d, np.empty((B, hw, hw), np.float32), 0)

                def cam_box():
                    kernels.cams(feats_d, x["class_ids"], (B, C, hw, hw), out=cams_d)  # noqa: B023
                    return kernels.boxes(cams_d, (B, hw, hw), [x["tau"]], size)  # noqa: B023

                def box_100():
                    return kernels.boxes(cams_d, (B, hw, hw), x["taus"], size, threshold_chunk=100)  # noqa: B023

                # box_100 first: it grows the shared work buffers, which a graph captured before would
                # still point at after they were freed
                mism = {"box_100": int((box_100() != reference_boxes(gpu_cams, x["taus"], size)).any(-1).sum())}
                stream = kernels.stream()
                ids_d = kernels._upload("bench_class_ids", x["class_ids"].astype(np.int64), stream)
                tau_d = kernels._upload("bench_tau", np.array([x["tau"]], np.float64), stream)

                def enqueue(s):
                    kernels.cams(feats_d, ids_d, (B, C, hw, hw), out=cams_d, stream=s)  # noqa: B023
                    return kernels.enqueue_boxes(cams_d, (B, hw, hw), tau_d, 1, size, s)  # noqa: B023

                boxes_d = enqueue(stream)
                kernels._check(kernels.rt.cudaStreamSynchronize(stream))
                graph = kernels.capture(enqueue, stream)

                def cam_box_graph():
                    graph.launch(stream)  # noqa: B023
                    return kernels._download(boxes_d, np.zeros((B, 1, 4), np.int32), stream)  # noqa: B023

                # parity on these inputs, from the GPU's own CAMs (the CAM kernel is held to NumPy in the tests)
                want_1 = reference_boxes(gpu_cams, [x["tau"]], size)
                mism["cam_box"] = int((cam_box() != want_1).any(-1).sum())
                mism["cam_box_graph"] = int((cam_box_graph() != want_1).any(-1).sum())
                for name, fn in (("cam_box", cam_box), ("cam_box_graph", cam_box_graph), ("box_100", box_100)):
                    # box_100 reallocates nothing here: the buffers already have its size
                    lat = timed(fn, args.repeats, 5)
                    rows[name] = {"backend": "cuda_kernels", "device": machine["gpu"], "latency_ms": lat,
                                  "us_per_image": lat["median"] * 1e3 / batch, "boxes_differing_from_cpu": mism[name]}
                    attach_cpu_reference(rows[name], name, size, batch, cpu_ref)
                rows["cam_box_graph"]["device_ms"] = graph_device_ms(kernels, graph, stream, 50)
                graph.close()
                kernels.rt.cudaStreamDestroy(stream)
                try:
                    stage = cupy_stage(kernels, x, size)
                    kernels.boxes(cams_d, (B, hw, hw), [x["tau"]], size)  # leaves this batch's u8 maps in place
                    got = stage()
                    lat = timed(stage, args.repeats, 5)
                    rows["cupyx_label_box"] = {"backend": "cupyx.scipy.ndimage.label", "device": machine["gpu"],
                                               "latency_ms": lat, "us_per_image": lat["median"] * 1e3 / batch,
                                               "boxes_differing_from_kernels": int((got != cam_box()[:, 0]).any(-1).sum()),
                                               "note": "threshold + label + box only, from the kernels' u8 maps"}
                except ImportError as exc:
                    print(f"cupy not available ({exc}): no cupyx row", file=sys.stderr)
            for name, row in rows.items():
                # every workload here is the pipeline's postprocess stage (CAM + box), timed whole
                records.append({**base, "workload": name, "precision": "fp32", **row,
                                "stages_ms": {"postprocess": row["latency_ms"]["median"]},
                                "images_per_s": 1e3 * batch / row["latency_ms"]["median"]})
                print(f"{size}^2 batch {batch:3d} {name:16s} {row['backend']:26s} {row['us_per_image']:10.1f} us/image",
                      file=sys.stderr)
    for r in records:
        r.update({"command": command_line("benchmarks.kernels", argv), "commit": git_commit(), "machine": machine})
    atomic_write_json(args.output, {"records": records})
    if kernels is not None:
        kernels.close()
    return 0


if __name__ == "__main__":
    from benchmarks.cli import exit_with_one_line_errors

    exit_with_one_line_errors(main)
