"""Run-folder files written whole or not at all.

A full disk, a kill or a power cut while a file is being rewritten must not
leave it empty or cut short: `--resume` reads ``sweep.json`` and ``env.json``
back, and a torn one would strand the run. Each file is written to a temporary
name beside it, flushed to disk, and renamed over the old one (a rename within
a folder is atomic on POSIX filesystems); on any failure the temporary file is
removed and the old file, if any, is untouched. (``cases.jsonl`` is the one
file appended to instead: `harness.run.results.JsonlWriter`.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; when the block ends without error it replaces ``path``, durably.

    A failure is an `OSError` naming ``path`` (not the temporary name), with the system's words for it.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself reaches the disk
        finally:
            os.close(folder)
    except OSError as exc:  # pyarrow's errors are OSErrors too, some without errno or strerror
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """``path`` holds ``text`` (UTF-8) whole, or is as it was before the call."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
