"""A bounded CPU load the trust tests start and always stop: one busy-loop process per CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


@contextmanager
def cpu_hogs(seconds: float = 120.0, count: int | None = None) -> Iterator[list[subprocess.Popen]]:
    """``count`` (default: every CPU) busy loops, each ending by itself after ``seconds`` and killed on exit."""
    count = count or os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=seconds)]) for _ in range(count)]
    try:
        time.sleep(0.3)  # they are running before the measurement starts
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
