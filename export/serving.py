"""Configurations for NVIDIA's serving stacks, fed with this project's models: a Triton Inference Server
model repository, and a DeepStream Gst-nvinfer config (architecture.md, "Scale-out": the project writes
their configuration; it runs no server of its own).

Neither server runs on the machines this is developed on. The Triton config is checked in the tests
against Triton's own ``ModelConfig`` protobuf (tritonclient) and against the tensors ONNX Runtime
returns; the nvinfer config against the keys and value forms of NVIDIA's Gst-nvinfer documentation and
against this project's own normalisation, value by value.

Both servers hand back the raw contract (``logits``, ``cams``, ``class_ids``): the box step runs in the
client, with the metadata written next to the config (``wsol_edge.json``: class names, input size,
mean/std, CAM threshold, map normalisation), as ``wsol_edge.runtime`` runs it.
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from wsol_edge.atomic import atomic_write, atomic_write_bytes, atomic_write_json
from wsol_edge.backends import ONNX_SUFFIXES, TENSORRT_SUFFIXES
from wsol_edge.backends.triton_backend import METADATA_PARAMETER
from wsol_edge.export_metadata import MetadataError, load_onnx, onnx_metadata
from wsol_edge.tensorrt_support import read_sidecar

TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}
NVINFER_NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # Gst-nvinfer's network-mode values
METADATA_NAME = "wsol_edge.json"
LABELS_NAME = "labels.txt"


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str               # numpy's name: float32, int64, ...
    dims: tuple[int, ...]    # without the batch dimension; -1 where the model leaves a size open


@dataclass(frozen=True)
class ServedModel:
    path: Path
    kind: str                # "onnx" or "tensorrt"
    meta: dict
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


def read_model(path: str | Path) -> ServedModel:
    """The model's metadata and its tensors (name, type, dims past the batch), read without running it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return _read_onnx(path)
    if suffix in TENSORRT_SUFFIXES:
        return _read_engine(path)
    raise ValueError(f"{path}: a server takes an exported model (.onnx, or an engine .engine/.trt/.plan), "
                     f"not {suffix or 'a file without a suffix'} (python -m wsol_edge.export onnx first)")


def _read_onnx(path: Path, model=None) -> ServedModel:
    """``model``: the file's ModelProto where the caller holds it already."""
    from onnx.helper import tensor_dtype_to_np_dtype

    model = model if model is not None else load_onnx(path, weights=False)
    meta = onnx_metadata(model, str(path))
    weights = {t.name for t in model.graph.initializer}

    def tensors(values) -> tuple[Tensor, ...]:
        out = []
        for v in values:
            if v.name in weights:
                continue
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
            if not dims or dims[0] > 0:  # a fixed batch: Triton's batching and nvinfer's batch-size need it open
                raise ValueError(f"{path}: tensor {v.name} has no open batch dimension (shape {dims}); export the "
                                 "model with python -m wsol_edge.export onnx, whose batch dimension is dynamic")
            dtype = tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
            out.append(Tensor(v.name, dtype, tuple(dims[1:])))
        return tuple(out)

    return ServedModel(path, "onnx", meta, tensors(model.graph.input), tensors(model.graph.output))


def with_sizes_from_onnxruntime(model: ServedModel) -> ServedModel:
    """An ONNX model with the output sizes past the batch that ONNX Runtime resolves when it loads it, where the file
    leaves them open: onnx's shape inference stops at the CAM head's ReduceSum, so the map's size (``cams``) reads
    [-1, -1] there, while a server's config and its clients are better off with the fixed size (7x7 for the
    quickstart's stride-32 model at 224). Only the Triton config uses output sizes, so only it pays for the load."""
    if model.kind != "onnx" or all(-1 not in t.dims for t in model.outputs):
        return model
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a model this ONNX Runtime cannot load keeps its open sizes; Triton takes them
        return model
    shapes = {o.name: o.shape for o in session.get_outputs()}
    resolved = []
    for t in model.outputs:
        known = shapes.get(t.name, [])[1:]
        if len(known) == len(t.dims):
            t = Tensor(t.name, t.dtype, tuple(k if d == -1 and isinstance(k, int) and k > 0 else d
                                             for d, k in zip(t.dims, known)))
        resolved.append(t)
    return replace(model, outputs=tuple(resolved))


def _read_engine(path: Path) -> ServedModel:
    meta = read_sidecar(path)
    io = meta.get("tensorrt", {}).get("io")
    if not io:  # the types TensorRT gave the outputs (class_ids: INT64 or INT32) are known only from the build
        raise MetadataError(f"{path}: its sidecar does not record the engine's tensor types (built by an older "
                            "wsol_edge); rebuild it with python -m wsol_edge.export engine")

    def tensors(entries) -> tuple[Tensor, ...]:
        return tuple(Tensor(e["name"], e["dtype"], tuple(e["shape"][1:])) for e in entries)

    return ServedModel(path, "tensorrt", meta, tensors(io["inputs"]), tensors(io["outputs"]))


def engine_batch_profile(model: ServedModel) -> tuple[int, int]:
    """(min, max) batch of the engine's optimisation profile."""
    opts = model.meta.get("tensorrt", {}).get("options", {})
    return int(opts.get("min_batch", 1)), int(opts.get("max_batch", 1))


def model_name(text: str) -> str:
    """A model name a server and a file system both take: letters, digits, '_', '-' and '.'."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".")
    if not name:
        raise ValueError(f"model name {text!r} has no letter or digit")
    return name


def triton_config(model: ServedModel, name: str, max_batch: int, instances: int, kind: str,
                  queue_delay_us: int) -> str:
    """config.pbtxt in protobuf text format (Triton's ModelConfig)."""
    platform = "onnxruntime_onnx" if model.kind == "onnx" else "tensorrt_plan"
    metadata = json.dumps(model.meta)
    n_classes = len(model.meta["class_names"])

    def block(t: Tensor) -> str:
        if t.dtype not in TRITON_TYPES:
            raise ValueError(f"{model.path}: tensor {t.name} is {t.dtype}, which this writer has no Triton type for")
        # one value per image (class_ids: shape [batch]) is dims [1] reshaped to [], as Triton's model
        # configuration guide asks of a batched model
        dims = ", ".join(str(d) for d in t.dims) if t.dims else "1"
        extra = "" if t.dims else "\n    reshape: { shape: [ ] }"
        if t.name == "logits" and t.dims == (n_classes,):
            # the classification extension: a client asking for class_count=k gets "score:index:name" strings
            extra += f'\n    label_filename: "{LABELS_NAME}"'
        return f'  {{\n    name: "{t.name}"\n    data_type: {TRITON_TYPES[t.dtype]}\n    dims: [ {dims} ]{extra}\n  }}'

    return "\n".join([
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch}",
        "input [\n" + ",\n".join(block(t) for t in model.inputs) + "\n]",
        "output [\n" + ",\n".join(block(t) for t in model.outputs) + "\n]",
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}",
        f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_{kind.upper()}\n  }}\n]",
        # the metadata a client needs to pre- and postprocess, readable through Triton's model-config API
        # (backends read the parameters they know and pass over the others)
        f'parameters {{\n  key: "{METADATA_PARAMETER}"\n  value: {{ string_value: {pbtxt_string(metadata)} }}\n}}',
        "",
    ])


def pbtxt_string(text: str) -> str:
    """A protobuf text-format string literal: quotes and backslashes escaped, other characters as UTF-8."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def write_triton_repository(model_path: str | Path, repository: str | Path, *, name: str | None = None,
                            version: int = 1, max_batch: int | None = None, instances: int = 1, kind: str = "gpu",
                            queue_delay_us: int = 100) -> Path:
    """REPOSITORY/NAME/{config.pbtxt, labels.txt, wsol_edge.json, VERSION/model.onnx|model.plan}; the folder."""
    model = with_sizes_from_onnxruntime(read_model(model_path))
    name = model_name(name or model.path.stem)
    if model.kind == "tensorrt":
        if kind != "gpu":
            raise ValueError(f"--kind {kind}: a TensorRT engine runs on the GPU it was built for (give the .onnx model "
                             "to serve on the CPU)")
        low, high = engine_batch_profile(model)
        if low > 1:  # Triton's dynamic batcher sends batches from 1 up
            raise ValueError(f"{model.path}: its profile starts at batch {low}; Triton sends batches from 1 up: "
                             "rebuild it with --min-batch 1")
        if max_batch is None:
            max_batch = high
        elif max_batch > high:
            raise ValueError(f"--max-batch {max_batch}: the engine's profile ends at batch {high} (rebuild it with "
                             f"--max-batch {max_batch})")
    elif max_batch is None:
        max_batch = 8
    folder = Path(repository) / name
    config = triton_config(model, name, max_batch, instances, kind, queue_delay_us)
    target = folder / str(version) / ("model.onnx" if model.kind == "onnx" else "model.plan")
    atomic_write_bytes(target, model.path.read_bytes())
    write_labels(folder / LABELS_NAME, model.meta["class_names"])
    atomic_write_json(folder / METADATA_NAME, model.meta)
    atomic_write(folder / "config.pbtxt", lambda f: f.write(config), binary=False)  # last: a server sees it whole
    newer = sorted(int(d.name) for d in folder.iterdir() if d.is_dir() and d.name.isdigit() and int(d.name) > version)
    if newer:  # Triton's default version policy serves the latest one only
        print(f"warning: {folder} also holds version {newer[-1]}, which Triton serves by default instead of version "
              f"{version}; give --version {newer[-1] + 1} (or remove the older export)", file=sys.stderr)
    return folder


def write_labels(path: Path, class_names) -> Path:
    """One class name a line, the label file both servers read."""
    return atomic_write(path, lambda f: f.write("".join(f"{c}\n" for c in class_names)), binary=False)


def one_std(meta: dict) -> bool:
    std = [float(v) for v in meta["std"]]
    return max(std) - min(std) <= 1e-6 * max(std)


def nvinfer_scale(meta: dict) -> tuple[float, list[float]]:
    """(net-scale-factor, offsets) with which Gst-nvinfer's ``y = net-scale-factor * (x - offsets[c])`` on 0-255
    pixels equals this project's ``(x / 255 - mean[c]) / std[c]``; the model's std must be one number."""
    return 1.0 / (255.0 * float(meta["std"][0])), [255.0 * float(m) for m in meta["mean"]]


def fold_std_into_graph(model_path: Path, out_path: Path) -> ServedModel:
    """A copy of an ONNX model that divides its input by the per-channel std itself, with std 1 in its
    metadata: Gst-nvinfer has one net-scale-factor for all channels, so a model normalised with ImageNet's
    std (ResNet, DeiT) is fed ``x/255 - mean`` and does the rest in the graph. Every runtime here reads the
    same metadata, so the copy gives the same results as the original anywhere."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from wsol_edge.export_metadata import write_onnx_metadata

    model = load_onnx(model_path)
    meta = onnx_metadata(model, str(model_path))
    scaled = "images_divided_by_std"
    for node in model.graph.node:
        node.input[:] = [scaled if name == "images" else name for name in node.input]
    std = np.asarray(meta["std"], np.float32).reshape(1, 3, 1, 1)
    model.graph.initializer.append(numpy_helper.from_array(std, "wsol_edge_input_std"))
    model.graph.node.insert(0, helper.make_node("Div", ["images", "wsol_edge_input_std"], [scaled],
                                                name="wsol_edge_divide_by_std"))
    write_onnx_metadata(model, {**meta, "std": [1.0, 1.0, 1.0], "std_in_graph": [float(v) for v in meta["std"]]})
    onnx.checker.check_model(model)
    atomic_write_bytes(out_path, model.SerializeToString())
    return _read_onnx(out_path, model)


def nvinfer_config(model: ServedModel, config_path: Path, batch_size: int, gpu_id: int) -> str:
    """The [property] group of a Gst-nvinfer config: a primary, full-frame inference whose raw outputs are
    attached to each frame as tensor meta (network-type 100, output-tensor-meta 1), in the model's own
    colour order (RGB), plain resize (no aspect ratio kept, as the evaluation frame) with bilinear
    scaling, the nearest nvinfer has to cv2.INTER_LINEAR (not bit-identical)."""
    meta = model.meta
    precision = str(meta.get("precision", "fp32"))
    if model.kind == "onnx" and precision == "int8":
        # nvinfer builds an ONNX model in INT8 only with a calibration file; its Q/DQ scales would be dropped
        raise ValueError(f"{model.path}: an INT8 Q/DQ model; build its engine with python -m wsol_edge.export engine "
                         "--int8 and give the engine")
    if model.kind == "tensorrt":
        low, high = engine_batch_profile(model)
        if not low <= batch_size <= high:
            raise ValueError(f"--batch-size {batch_size}: the engine's profile takes batches {low} to {high}")
    if not one_std(meta):  # write_nvinfer_config folds an ONNX model's; an engine is built already
        raise ValueError(f"{model.path}: its std {meta['std']} differs per channel, and Gst-nvinfer scales every channel "
                         "by one net-scale-factor: give the ONNX model instead (its std is then divided in a copy of "
                         "the graph, from which an engine can be built)")
    scale, offsets = nvinfer_scale(meta)
    images = next(t for t in model.inputs if t.name == "images")
    here = config_path.resolve().parent
    target = model.path.resolve()
    # nvinfer reads paths relative to the config file's folder: a folder moved whole keeps working
    shown = os.path.relpath(target, here) if here in target.parents else str(target)
    lines = [
        "[property]",
        f"gpu-id={gpu_id}",
        f"net-scale-factor={scale!r}",
        "offsets=" + ";".join(repr(o) for o in offsets),
        "model-color-format=0",
        ("onnx-file=" if model.kind == "onnx" else "model-engine-file=") + shown,
        f"labelfile-path={config_path.stem}.{LABELS_NAME}",
        "infer-dims=" + ";".join(str(d) for d in images.dims),
        f"batch-size={batch_size}",
        f"network-mode={NVINFER_NETWORK_MODE.get(precision, 0)}",
        "network-type=100",
        "output-tensor-meta=1",
        "process-mode=1",
        "gie-unique-id=1",
        "interval=0",
        "maintain-aspect-ratio=0",
        "scaling-filter=1",
        "",
    ]
    return "\n".join(lines)


def write_nvinfer_config(model_path: str | Path, config_path: str | Path, *, batch_size: int = 1,
                         gpu_id: int = 0) -> tuple[Path, Path | None]:
    """CONFIG (the Gst-nvinfer config), CONFIG-stem.labels.txt and CONFIG-stem.wsol_edge.json beside it; for an
    ONNX model whose std differs per channel, also CONFIG-stem.onnx, the model dividing by its std in the graph."""
    model = read_model(model_path)
    config_path = Path(config_path)
    folder = config_path.parent
    folded = None
    if model.kind == "onnx" and not one_std(model.meta) and model.meta.get("precision") != "int8":
        folded = folder / f"{config_path.stem}.onnx"
        if folded.resolve() == model.path.resolve():
            raise ValueError(f"--output {config_path}: the model with its std in the graph would be written as "
                             f"{folded.name}, replacing the model itself; give the config another name")
        model = fold_std_into_graph(model.path, folded)
    text = nvinfer_config(model, config_path, batch_size, gpu_id)
    write_labels(folder / f"{config_path.stem}.{LABELS_NAME}", model.meta["class_names"])
    atomic_write_json(folder / f"{config_path.stem}.{METADATA_NAME}", model.meta)
    return atomic_write(config_path, lambda f: f.write(text), binary=False), folded
