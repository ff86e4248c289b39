"""The one-line-error exit shared by the standalone probe commands (``python -m benchmarks.X``), and the
skipping of unreadable images the image-reading ones share."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def exit_with_one_line_errors(main: Callable[[], int]) -> None:
    """Run ``main`` and exit with its code; a missing data root, checkpoint or model file, an
    unreadable image, or a checkpoint of the wrong method, is one ``error:`` line and exit code 2,
    not a traceback."""
    from wsol_edge.backends.base import BackendError

    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError, BackendError) as exc:  # an unreadable image is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def readable_images(paths: list[Path], read: Callable[[Path], T]) -> list[T]:
    """``read(path)`` of each image that can be read; each one that cannot is skipped with a line saying
    why (a corrupt file among the samples costs that image, not the run); none readable is an error."""
    from wsol_edge.imageio import ImageReadError

    read_ok = []
    for path in paths:
        try:
            read_ok.append(read(path))
        except (ImageReadError, OSError) as exc:
            print(f"skipped: {exc}", file=sys.stderr)
    if not read_ok:
        raise ValueError(f"none of the {len(paths)} images could be read")
    return read_ok
