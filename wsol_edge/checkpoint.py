"""Checkpoints: written atomically, read with ``weights_only=True`` (no pickled code runs)."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from .atomic import atomic_write_bytes

FORMAT = "wsol_edge.checkpoint/1"


def save_checkpoint(path: str | Path, state: dict) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    state = _load_weights_only(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a wsol_edge checkpoint (no '{FORMAT}' marker)")
    return state


def load_weights_file(path: str | Path) -> dict:
    """A state dict from someone else's weights file (ImageNet backbones), read like our checkpoints."""
    state = _load_weights_only(path, "weights file")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a weights file (holds a {type(state).__name__}, not a state dict)")
    return state


def _load_weights_only(path: str | Path, what: str):
    """``torch.load(weights_only=True)`` with one-line errors naming ``what`` the file should be."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, wrong format, or an object weights_only refuses
        raise ValueError(f"{path}: not a readable {what} ({load_failure_reason(exc)})") from None


def load_failure_reason(exc: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` failed.

    torch's own message for a weights-only refusal opens with advice to retry
    with ``weights_only=False``; that would run pickled code from the file, which
    this package never does, so only the unpickler's reason is kept.
    """
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip()
        detail = detail.splitlines()[0].split(" was not an allowed global")[0] if detail else "unknown"
        return f"the weights-only loader refused it: {detail[:160]}"
    if not text.strip():
        return f"{type(exc).__name__}: empty or truncated file"
    first = text.strip().splitlines()[0].split(". ")[0]  # torch appends paragraphs of advice
    return f"{type(exc).__name__}: {first[:200]}"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(model_state: dict) -> str:
    """A hash of the weights alone: names, dtypes, shapes and bytes, in name order.

    The checkpoint file's own hash changes with every save (it holds training times and
    commits), so only this one says whether two trainings ended with the same weights.
    """
    h = hashlib.sha256()
    for name in sorted(model_state):
        t = model_state[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(model_state[name].shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def checkpoint_provenance(path: str | Path, state: dict) -> dict:
    """What a result record says about the checkpoint it scored: file, hashes and how it was trained."""
    return {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path),
            "weights_sha256": weights_sha256(state["model"]) if "model" in state else None,
            "train_command": state.get("command"), "epochs": state.get("epoch"),
            "precise_bn": state.get("precise_bn"),
            # wsol_edge.train had no --device before it recorded one: those checkpoints trained on a CPU
            "train_device": (state.get("train_args") or {}).get("device") or "cpu",
            "train_commits": sorted({h["commit"] for h in state.get("history", []) if h.get("commit")})}
