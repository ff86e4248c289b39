"""Run a WSOL model on images, videos, cameras or streams:
``python -m wsol_edge.run --engine model.onnx --source camera:0``

The backend comes from the model file: .onnx -> ONNX Runtime (CPU by default), .engine/.trt/.plan ->
TensorRT, .pt -> PyTorch; triton://HOST[:PORT]/NAME -> a model served by Triton Inference Server. Neither
torch nor training code is imported for ONNX/TensorRT/Triton.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .argtypes import (TTA_MODES, HelpFormatter, non_negative_int, output_file, positive_float, positive_int,
                       unit_fraction)
from .torch_device import DEVICE_HELP


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wsol_edge.run", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--engine", "--model", dest="engine", required=True,
                   help=".onnx, .engine/.trt/.plan, .pt, or triton://HOST[:PORT]/NAME[/VERSION] (a repository written "
                        "by python -m wsol_edge.export triton)")
    p.add_argument("--source", required=True, help="image, folder, glob, video, camera:N, rtsp/http URL, or GStreamer pipeline")
    p.add_argument("--batch", type=positive_int, default=1, help="frames per inference call")
    p.add_argument("--threshold", type=float, help="CAM threshold (default: the model's metadata)")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="test-time augmentation for a .pt checkpoint (flip: image and mirror, one batch, maps "
                        "averaged; needs --threshold); an ONNX model or engine has it only if exported with --tta")
    p.add_argument("--tta-sizes", type=positive_int, nargs="+", metavar="PX",
                   help="test-time input sizes for a .pt checkpoint (e.g. 224 288; needs --threshold); an ONNX "
                        "model or engine has them only if exported with --tta-sizes")
    p.add_argument("--ivr-percentile", type=unit_fraction, metavar="P",
                   help="normalise each map by inferior value removal (subtract its value at percentile P, clip "
                        "at 0, divide by the max) instead of the model's own normalisation (min-max, or IVR for a "
                        "model exported with --ivr-percentile; 0 is min-max); another P than the model's needs "
                        "--threshold chosen on such maps")
    p.add_argument("--topk", type=positive_int, default=1, help="classes listed per frame in the JSONL")
    p.add_argument("--output", help="folder for annotated images / videos")
    p.add_argument("--cam-overlay", action="store_true", help="draw the CAM heat map in annotated output")
    p.add_argument("--jsonl", type=output_file, help="one JSON line per frame")
    p.add_argument("--show", action="store_true", help="display in a window (q or Esc quits)")
    p.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    p.add_argument("--fps", type=positive_float, help="limit the capture rate")
    p.add_argument("--drop-frames", action=argparse.BooleanOptionalAction, default=True,
                   help="live sources: drop stale frames instead of queueing them (files never drop)")
    p.add_argument("--reconnect", type=non_negative_int, default=5, help="reconnect attempts for a live source that drops")
    p.add_argument("--providers", nargs="+", default=["cpu"], help="ONNX Runtime providers: cpu, cuda, tensorrt")
    p.add_argument("--device", default="cpu",
                   help=f"where a .pt checkpoint runs ({DEVICE_HELP}); an ONNX model runs where --providers says, "
                        "a TensorRT engine on its GPU")
    p.add_argument("--threads", type=positive_int, help="intra-op threads: ONNX Runtime's, or torch's for a .pt")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--verbose", action="store_true",
                   help="also print OpenCV's and FFmpeg's own messages (hidden by default: a source that fails is one "
                        "line of this tool's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .backends import TORCH_SUFFIXES, BackendError, torch_installed
    from .runtime.localizer import Localizer
    from .runtime.pipeline import Pipeline
    from .runtime.sinks import AnnotatedSink, JsonlSink, OutputError, WindowSink
    from .runtime.sources import SourceError, open_source, quiet_video_logs, source_files

    if not args.verbose:
        quiet_video_logs()
    sinks = []
    threads = args.threads
    if threads and Path(args.engine).suffix.lower() in TORCH_SUFFIXES and torch_installed():
        import torch

        torch.set_num_threads(threads)  # a checkpoint's counterpart of ONNX Runtime's intra-op threads
        threads = None
    try:
        loc = Localizer(args.engine, threshold=args.threshold, topk=args.topk, ivr_percentile=args.ivr_percentile,
                        providers=args.providers, device=args.device,
                        threads=threads, tta=args.tta, tta_sizes=args.tta_sizes)
        files = source_files(args.source)  # listed once: the output check and the reader share it
        annotated = AnnotatedSink(args.output, args.cam_overlay, inputs=files) if args.output else None
        jsonl = JsonlSink(args.jsonl) if args.jsonl else None
        window = WindowSink(args.cam_overlay) if args.show else None
        sinks = [s for s in (annotated, jsonl, window) if s]
        pipeline_stop = []
        frames, live, total = open_source(args.source, reconnect=args.reconnect, stop=lambda: bool(pipeline_stop),
                                          files=files)
    except (BackendError, SourceError, OutputError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        for s in sinks:
            s.close()
        return 2

    from tqdm import tqdm

    pipe = Pipeline(loc, frames, live=live, batch=args.batch, drop_frames=args.drop_frames,
                    max_frames=args.max_frames, fps=args.fps)
    if args.max_frames and total:
        total = min(total, args.max_frames)
    bar = tqdm(total=total, unit="frame", disable=args.no_progress or live, file=sys.stderr)

    def on_result(frame, r):
        bar.update(1)
        if jsonl:
            jsonl.write({"source": frame.source, "frame": frame.index, "timestamp": frame.timestamp,
                         "image_size": [int(frame.image.shape[1]), int(frame.image.shape[0])], **r.to_dict()})
        if annotated:
            annotated.write(frame, r)
        if window:
            return window.write(frame, r)
        return True

    def on_error(frame):
        bar.update(1)
        tqdm.write(f"skipped: {frame.error}", file=sys.stderr)
        if jsonl:
            jsonl.write({"source": frame.source, "frame": frame.index, "timestamp": frame.timestamp, "error": frame.error})

    rc = 0
    unfinished = []  # what a sink found wrong with its own files when closing them
    try:
        stats = pipe.run(on_result, on_error)
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        pipe.stop.set()
        rc = 2
        stats = pipe.stats
    finally:
        pipeline_stop.append(True)
        bar.close()
        for s in sinks:
            try:
                s.close()
            except OutputError as exc:
                unfinished.append(exc)
        loc.close()
    print(stats.summary(), file=sys.stderr)
    for exc in unfinished:
        print(f"error: {exc}", file=sys.stderr)
        rc = 2
    if pipe.fatal:
        print(f"error: {pipe.fatal}", file=sys.stderr)
        return 1
    if stats.frames == 0 and rc == 0:
        print("error: no frame could be processed", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
