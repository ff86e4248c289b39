"""argparse types for counts, so that ``--batch 0`` or ``--epochs -1`` is refused in one line at parse
time instead of failing (or silently doing nothing) deep inside a run; and choices several CLIs share."""
from __future__ import annotations

import argparse

# wsol_edge/models/tta.py's modes, kept here so that CLIs can offer them without importing torch
TTA_MODES = ("none", "flip")


def tta_flags(mode: str | None, sizes: list[int] | tuple[int, ...] | None) -> str:
    """The command-line flags that name a test-time augmentation ("" for none), for messages."""
    flags = [f"--tta {mode}"] if mode not in (None, "none") else []
    if sizes:
        flags.append("--tta-sizes " + " ".join(str(s) for s in sizes))
    return " ".join(flags)


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """A gradient-norm bound or a frame rate: 0 or less (or NaN) would train or run without a word of warning."""
    value = _finite_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def open_unit_interval(text: str) -> float:
    """A number strictly between 0 and 1 (an area share, a threshold step, a confidence)."""
    value = _finite_number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (both excluded), got {text}")
    return value


def unit_fraction(text: str) -> float:
    """A number in [0, 1) (a percentile as a fraction)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the uninformative ones (None, False): ``--threshold``'s help already
    says where its value comes from when it is not given."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)
