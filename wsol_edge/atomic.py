"""Atomic file writes: a crash mid-write never leaves a half-written result or checkpoint."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the umask. Read from /proc where it can be, since
    reading it with ``os.umask`` means setting it, which races with other threads creating files."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


class UnwritableError(ValueError):
    """A folder that results are to be written into cannot be made or written."""


class WriteError(UnwritableError):
    """A file could not be written to the end (a full disk, a quota): the one it was to replace is kept."""


def _unwritable(folder: Path, exc: OSError | None = None) -> UnwritableError | None:
    """Why ``folder`` cannot be written: a file where it or a parent should be, no write permission in the
    nearest folder that exists, or the OS error met; None where nothing stands in the way."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        why = f"{existing} is a file"
    elif exc is not None:
        why = exc.strerror or str(exc)
    elif not os.access(existing, os.W_OK | os.X_OK):
        why = f"no write permission in {existing}"
    else:
        return None
    return UnwritableError(f"output folder {folder} is not writable ({why})")


def writable_folder(folder: str | os.PathLike, *, create: bool = True) -> Path:
    """``folder``, made if missing and checked writable, before any work goes into what will be written there.
    ``create=False`` checks without making anything (a command that may still refuse its other arguments):
    the nearest folder that exists must be a folder this process may write into."""
    folder = Path(folder)
    if not create:
        error = _unwritable(folder)
        if error:
            raise error
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_test"):
            pass
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    return folder


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, binary: bool = True) -> Path:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it into place.

    ``os.replace`` is atomic on POSIX and Windows when both names are on one filesystem,
    which is why the temporary file lives in the destination folder. The file gets the mode of the one it
    replaces, or a new file's (mkstemp's 0o600 would leave a model unreadable to the service user serving it).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path.parent, exc) from None
    try:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = new_file_mode()
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # a full disk, a quota, an I/O error: one line a CLI reports, not a traceback
            kept = "the file there before is kept" if path.is_file() else "nothing was written"
            raise WriteError(f"cannot write {path} ({exc.strerror or exc}); {kept}") from None
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda f: f.write(text), binary=False)
