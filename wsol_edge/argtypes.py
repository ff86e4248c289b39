"""argparse types for counts, so that ``--batch 0`` or ``--epochs -1`` is refused in one line at parse
time instead of failing (or silently doing nothing) deep inside a run; and choices several CLIs share."""
from __future__ import annotations

import argparse
import math

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


def _finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _within(parse, accept, rule: str, doc: str):
    """An argparse type: ``parse`` the text, then refuse a value ``accept`` rejects, saying the ``rule``."""
    def check(text: str):
        value = parse(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text.strip()}")
        return value
    check.__doc__ = doc
    return check


positive_int = _within(_whole_number, lambda v: v >= 1, "1 or more", "A count of at least one.")
non_negative_int = _within(_whole_number, lambda v: v >= 0, "0 or more", "A count that may be 0.")
positive_float = _within(_finite_number, lambda v: v > 0, "more than 0",
                         "A gradient-norm bound or a frame rate: 0 or less (or NaN) would train or run without a word.")
non_negative_float = _within(_finite_number, lambda v: v >= 0, "0 or more", "A rate or a loss weight.")
open_unit_interval = _within(_finite_number, lambda v: 0 < v < 1, "between 0 and 1 (both excluded)",
                             "A number strictly between 0 and 1 (an area share, a threshold step, a confidence).")
percent = _within(_whole_number, lambda v: 1 <= v <= 100, "a whole percent from 1 to 100", "An IoU threshold in percent.")
unit_fraction = _within(_finite_number, lambda v: 0 <= v < 1, "in [0, 1)", "A number in [0, 1) (a percentile as a fraction).")


def output_file(text: str) -> str:
    """A result file's path, refused at parse time when it could not be written (a folder, or a folder that
    this process may not write into): else a run of minutes or hours loses its result at the very end."""
    from pathlib import Path

    from .atomic import UnwritableError, writable_folder

    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the file to write")
    try:
        writable_folder(path.parent, create=False)
    except UnwritableError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the uninformative ones (None, False): ``--threshold``'s help already
    says where its value comes from when it is not given."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)
