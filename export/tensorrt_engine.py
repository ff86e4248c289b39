"""ONNX -> TensorRT 10 engine, with the model's metadata in a sidecar JSON.

Kept small and plain on purpose: TensorRT cannot be installed on the machines this project is
developed on, so this file is type-checked against ``tensorrt-stubs`` (see .ci/typecheck_tensorrt.sh)
and every call is one a reader can check against the TensorRT 10 Python API.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wsol_edge.atomic import atomic_write_bytes, atomic_write_json
from wsol_edge.export_metadata import read_onnx_metadata
from wsol_edge.tensorrt_support import gpu_identity, require_tensorrt, sidecar_path

if TYPE_CHECKING:  # the annotations only; TensorRT itself is imported where it runs
    import tensorrt as trt


@dataclass
class EngineOptions:
    fp16: bool = False
    int8: bool = False  # from Q/DQ nodes: built as a strongly typed network
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32
    workspace_mb: int = 1024
    timing_cache: str | None = None
    dla_core: int | None = None
    gpu_fallback: bool = True
    hardware_compat: str = "none"  # none | ampere_plus | same_compute_capability
    version_compat: bool = False


def check_options(onnx_path: str | Path, opts: EngineOptions) -> dict:
    """The model's metadata, once the options are known to fit it: said before TensorRT is needed, so
    the same command gives the same answer on a machine with TensorRT and on one without."""
    meta = read_onnx_metadata(onnx_path)
    if opts.int8 and meta.get("precision") != "int8":
        raise ValueError(f"{onnx_path}: --int8 needs the Q/DQ model (python -m wsol_edge.export int8)")
    if opts.int8 and opts.fp16:
        raise ValueError("--int8 builds a strongly typed network, whose types come from the Q/DQ graph, so --fp16 "
                         "would change nothing: give one of them")
    if opts.dla_core is not None and not (opts.fp16 or opts.int8):
        # TensorRT 10 runs DLA layers in FP16 or INT8 only; with GPU fallback an FP32 build puts every layer on
        # the GPU without a word, and without it the build fails
        raise ValueError(f"--dla-core {opts.dla_core}: the DLA runs FP16 or INT8 only; add --fp16 (or build the Q/DQ "
                         "model with --int8)")
    if not opts.min_batch <= opts.opt_batch <= opts.max_batch:
        raise ValueError(f"batch profile must satisfy min <= opt <= max, got {opts.min_batch} / {opts.opt_batch} / "
                         f"{opts.max_batch}")
    return meta


def build_engine(onnx_path: str | Path, engine_path: str | Path, opts: EngineOptions) -> Path:
    meta = check_options(onnx_path, opts)
    require_tensorrt()
    import tensorrt as trt
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if opts.int8:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"{onnx_path}: TensorRT cannot parse it: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    if opts.fp16 and not opts.int8:  # a strongly typed network takes its types from the graph
        config.set_flag(trt.BuilderFlag.FP16)
    size = int(meta["input_size"])
    profile = builder.create_optimization_profile()
    profile.set_shape("images", trt.Dims4(opts.min_batch, 3, size, size), trt.Dims4(opts.opt_batch, 3, size, size),
                      trt.Dims4(opts.max_batch, 3, size, size))
    config.add_optimization_profile(profile)

    cache_file = Path(opts.timing_cache) if opts.timing_cache else None
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file and cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)

    if opts.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
        if opts.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if opts.hardware_compat == "ampere_plus":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    elif opts.hardware_compat == "same_compute_capability":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    if opts.version_compat:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the log above)")
    if cache_file is not None:
        atomic_write_bytes(cache_file, bytes(memoryview(config.get_timing_cache().serialize())))
    gpu, cc = gpu_identity()
    data = bytes(memoryview(serialized))
    # the tensors as the engine has them (TensorRT may give class_ids another integer type than the ONNX
    # graph): a server config written later (export/serving.py) needs them without a GPU
    engine = trt.Runtime(logger).deserialize_cuda_engine(data)
    if engine is None:
        raise RuntimeError("TensorRT cannot read back the engine it built (see the log above)")
    out = atomic_write_bytes(engine_path, data)
    precision = "int8" if opts.int8 else ("fp16" if opts.fp16 else "fp32")
    atomic_write_json(sidecar_path(engine_path), {
        **meta, "precision": precision, "source_onnx": Path(onnx_path).name,
        "tensorrt": {"version": trt.__version__, "gpu": gpu, "compute_capability": cc,
                     "hardware_compat": opts.hardware_compat, "version_compatible": opts.version_compat,
                     "options": asdict(opts), "io": engine_io(engine)}})
    return out


def engine_io(engine: trt.ICudaEngine) -> dict:
    """{"inputs": [...], "outputs": [...]}, each {"name", "dtype" (numpy's name), "shape" (-1 where open)}."""
    import numpy as np
    import tensorrt as trt

    io: dict[str, list[dict]] = {"inputs": [], "outputs": []}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        side = "inputs" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "outputs"
        io[side].append({"name": name, "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name,
                         "shape": [int(d) for d in engine.get_tensor_shape(name)]})
    return io
