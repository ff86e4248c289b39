"""Jetson context for speed records: the power mode (``nvpmodel -q``) and ``tegrastats`` samples
taken while a measurement runs. Both are no-ops where the tools are absent (desktop, CI).
Not yet run on a Jetson by this project."""
from __future__ import annotations

import shutil
import subprocess
import threading


def power_mode() -> str | None:
    if not shutil.which("nvpmodel"):
        return None
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return " / ".join(lines) or None


class Tegrastats:
    """``with Tegrastats() as t: ...`` collects tegrastats lines (interval in ms) into ``t.lines``."""

    def __init__(self, interval_ms: int = 500, max_lines: int = 2000):
        self.interval_ms, self.max_lines = interval_ms, max_lines
        self.lines: list[str] = []
        self.proc = None

    def __enter__(self):
        if shutil.which("tegrastats"):
            self.proc = subprocess.Popen(["tegrastats", "--interval", str(self.interval_ms)],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            if len(self.lines) < self.max_lines:
                self.lines.append(line.strip())

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
