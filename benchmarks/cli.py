"""The one-line-error exit shared by the standalone probe commands (``python -m benchmarks.X``)."""
from __future__ import annotations

import sys
from collections.abc import Callable


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
