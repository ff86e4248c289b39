"""FP16 and INT8 (Q/DQ) versions of an exported ONNX model.

INT8 is post-training static quantization with ONNX Runtime's quantizer in QDQ format, the form
TensorRT 10 consumes for explicit INT8. By default the CAM head and the classifier stay in FP32
(``keep_head_fp32``): they are a handful of MACs, and quantizing the features they contract would
move the CAM, hence the box, for no speed gain. The metadata records what stayed in FP32.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import onnx

from wsol_edge.atomic import atomic_write_bytes

from .calibration import DEFAULT_CALIBRATION_IMAGES, ImageFolderReader, calibration_stride, images_digest, pick_images
from wsol_edge.export_metadata import read_onnx_metadata, write_onnx_metadata

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# The INT8 flavours this project exports and scores, one table for the exporter, the regression and the
# probe: name -> (activation type, 7-bit weights). S8 activations are what TensorRT consumes; ONNX
# Runtime's x86 kernels want U8 activations, with 7-bit weights on CPUs without VNNI, whose int16 pair
# sums saturate on 8-bit ones, and with 8-bit weights on CPUs with VNNI (README, INT8)
INT8_FLAVOURS = {"s8s8": ("int8", False), "s8s8_reduce_range": ("int8", True),
                 "u8s8": ("uint8", False), "u8s8_reduce_range": ("uint8", True)}


def int8_flavour(activation_type: str, reduce_range: bool) -> str:
    """The INT8_FLAVOURS name of a quantization setting (e.g. from a model's metadata)."""
    return {v: k for k, v in INT8_FLAVOURS.items()}[(activation_type, bool(reduce_range))]


def model_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes after the last Conv: global pooling, classifier Gemm, argmax/gather and the CAM
    contraction (everything that reads the final features)."""
    nodes = list(model.graph.node)
    last_conv = max(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    tail = nodes[last_conv + 1:]
    # the activation (Clip/Relu) right after the last conv belongs to the backbone
    if tail and tail[0].op_type in ("Clip", "Relu"):
        tail = tail[1:]
    return [n.name for n in tail]


def fp32_source(src: str | Path, to: str) -> dict:
    """The metadata of a model to convert, refused unless it is the FP32 export: converting a converted model
    stacks the losses (FP16 again is refused by the converter, INT8 of INT8 fails ONNX's checker)."""
    meta = read_onnx_metadata(src)
    precision = meta.get("precision", "fp32")  # an ONNX file from elsewhere carries none
    if precision != "fp32":
        raise ValueError(f"{src} is already {precision.upper()}: make the {to} model from the FP32 export "
                         "(python -m wsol_edge.export onnx)")
    return meta


def to_fp16(src: str | Path, dst: str | Path) -> Path:
    """FP16 weights and activations, FP32 inputs/outputs (onnxconverter-common)."""
    from onnxconverter_common import float16

    meta = fp32_source(src, "FP16")
    model = onnx.load(str(src))
    half = float16.convert_float_to_float16(model, keep_io_types=True)
    meta.update(precision="fp16", fp32_nodes="graph inputs/outputs")
    write_onnx_metadata(half, meta)
    onnx.checker.check_model(half)
    return atomic_write_bytes(dst, half.SerializeToString())


def calibration_cache_supported() -> bool:
    """Whether this ONNX Runtime's quantize_static keeps a calibration cache (calibration_cache_path, 1.24+).
    Python 3.10, JetPack 6's, gets 1.23 at most: there each INT8 export calibrates afresh (slower, same
    ranges) instead of failing on the keyword."""
    import inspect

    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def to_int8(src: str | Path, dst: str | Path, calibration: str | Path | list, *, method: str = "entropy",
            num_images: int = DEFAULT_CALIBRATION_IMAGES, cache_dir: str | Path | None = None,
            keep_head_fp32: bool = True, activation_type: str = "int8", per_channel: bool = True,
            reduce_range: bool = False) -> Path:
    """Q/DQ INT8 with calibration on real images. The calibration cache (onnxruntime 1.24+) is keyed by
    the source model's hash, the method and the calibration set, so a stale cache is never reused.

    ``calibration`` is an image folder (searched recursively) or a list of image files (e.g. a
    dataset's train split, so test images never calibrate the model they will score)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}")
    src, dst = Path(src), Path(dst)
    meta = fp32_source(src, "INT8")
    files = pick_images(calibration, num_images)
    cache = None
    if calibration_cache_supported():
        # the ranges depend on the activation type (symmetric or not) too
        key = f"{model_sha256(src)[:16]}_{method}_{activation_type}_{images_digest(files)[:12]}_{len(files)}"
        cache_dir = Path(cache_dir) if cache_dir else dst.parent / "calibration_cache"
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache = cache_dir / f"calib_{key}.json"
    prepped = dst.with_name(dst.stem + ".prep.onnx")
    quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
    try:
        model = onnx.load(str(prepped))
        exclude = head_nodes(model) if keep_head_fp32 else []
        reader = ImageFolderReader(files, int(meta["input_size"]), meta["mean"], meta["std"])
        act = QuantType.QInt8 if activation_type == "int8" else QuantType.QUInt8
        calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
        tmp_out = dst.with_name(dst.stem + ".tmp.onnx")
        quantize_static(str(prepped), str(tmp_out), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        reduce_range=reduce_range, activation_type=act, weight_type=QuantType.QInt8,
                        calibrate_method=calib, nodes_to_exclude=exclude,
                        extra_options={"ActivationSymmetric": act == QuantType.QInt8, "WeightSymmetric": True,
                                       "CalibStridedMinMax": calibration_stride(len(files))},
                        **({"calibration_cache_path": str(cache)} if cache else {}))
        q = onnx.load(str(tmp_out))
        tmp_out.unlink()
    finally:
        prepped.unlink(missing_ok=True)
    meta.update(precision="int8", calibration_method=method, calibration_images=len(files),
                calibration_cache=cache.name if cache else None, activation_type=activation_type,
                per_channel=per_channel, reduce_range=reduce_range,
                fp32_nodes=("CAM head and classifier: " + ", ".join(exclude)) if exclude else "none")
    write_onnx_metadata(q, meta)
    onnx.checker.check_model(q)
    return atomic_write_bytes(dst, q.SerializeToString())
