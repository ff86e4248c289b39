"""Which PyTorch device training and evaluation run on (``--device``)."""
from __future__ import annotations

DEVICE_HELP = "auto: the first CUDA GPU when PyTorch sees one, else the CPU; or cpu, cuda, cuda:N"


def resolve_device(name: str, flag: str = "--device") -> str:
    """``auto`` -> ``cuda`` or ``cpu``; a CUDA device PyTorch cannot use is refused in one line
    before any work, rather than by torch deep inside the first step. ``flag`` is what the caller's
    user typed the device as (a CLI flag, or ``device`` for the Python API), named in the message."""
    import torch

    name = name.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"{flag} {name}: {why}; use {flag} cpu")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"{flag} {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return name
    raise ValueError(f"{flag} {name}: not a device ({DEVICE_HELP})")
