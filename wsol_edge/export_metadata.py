"""The metadata every exported model carries (ONNX ``metadata_props``; engine sidecar JSON).

All values are strings in ONNX; lists and numbers are JSON-encoded. Readers need only
onnxruntime (``custom_metadata_map``) or the sidecar, never torch.
"""
from __future__ import annotations

import json

REQUIRED_KEYS = ("wsol_edge_format", "class_names", "mean", "std", "input_size", "method", "backbone",
                 "protocol", "cam_threshold", "source_checkpoint_sha256", "precision")
FORMAT = "wsol_edge.onnx/1"


class MetadataError(ValueError):
    """A model file lacks the wsol_edge metadata or carries values that cannot be used."""


def encode(meta: dict) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def decode(props: dict[str, str], source: str = "model") -> dict:
    if props.get("wsol_edge_format") != FORMAT:
        raise MetadataError(f"{source}: no wsol_edge metadata (was it exported with python -m wsol_edge.export?)")
    missing = [k for k in REQUIRED_KEYS if k not in props]
    if missing:
        raise MetadataError(f"{source}: metadata is missing {', '.join(missing)}")
    out = {}
    for k, v in props.items():
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    for k in ("wsol_edge_format", "method", "backbone", "protocol", "precision", "source_checkpoint_sha256"):
        out[k] = str(props[k])
    check_normalization(out, source)
    return out


def check_metadata(meta, source: str) -> dict:
    """Metadata already decoded (a sidecar's or a serving config's JSON): an object with every required key."""
    missing = [k for k in REQUIRED_KEYS if k not in meta] if isinstance(meta, dict) else list(REQUIRED_KEYS)
    if missing:
        raise MetadataError(f"{source}: not wsol_edge metadata (missing {', '.join(missing)}); write it with "
                            "python -m wsol_edge.export")
    check_normalization(meta, source)
    return meta


def check_normalization(meta: dict, source: str = "model") -> None:
    """A runtime normalises every map with ``ivr_percentile`` (export onnx --ivr-percentile), so a bad
    value is refused when the metadata is read rather than at the first frame."""
    ivr = meta.get("ivr_percentile")
    if ivr is not None and (isinstance(ivr, bool) or not isinstance(ivr, (int, float)) or not 0.0 <= ivr < 1.0):
        raise MetadataError(f"{source}: metadata ivr_percentile must be a number in [0, 1) or null, got {ivr!r}")


def load_onnx(path, *, weights: bool = True):
    """An .onnx file's ModelProto (``weights=False``: without external weight files, for its graph and metadata)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=weights)
    except Exception as exc:
        raise MetadataError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None


def onnx_metadata(model, source: str) -> dict:
    """The metadata of a loaded onnx.ModelProto."""
    return decode({p.key: p.value for p in model.metadata_props}, source)


def read_onnx_metadata(path) -> dict:
    """Metadata of an .onnx file, read with onnx (protobuf only, weights not needed)."""
    return onnx_metadata(load_onnx(path, weights=False), str(path))


def write_onnx_metadata(model, meta: dict) -> None:
    """Replace the wsol_edge keys in an in-memory onnx.ModelProto."""
    enc = encode(meta)
    keep = [p for p in model.metadata_props if p.key not in enc]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    for k, v in enc.items():
        model.metadata_props.add(key=k, value=v)
