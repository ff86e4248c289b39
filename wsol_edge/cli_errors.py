"""The one line a command prints for an error it reports."""
from __future__ import annotations


def error_line(exc: BaseException) -> str:
    """``exc``'s message, for ``error: ...``. An exception raised in a DataLoader worker process comes
    back as the same type, but its message is torch's whole report ("Caught ImageReadError in DataLoader
    worker process 0. Original Traceback ...") ending in the original "module.Type: message" line: that
    message is the one to print (with ``--workers 2`` a corrupt image printed twenty lines of traceback)."""
    text = str(exc).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.splitlines()[-1]
        prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
        return last[len(prefix):] if last.startswith(prefix) else last
    return text
