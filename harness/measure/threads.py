"""Set torch's intra-op thread count for a block and restore it after, as torch.utils.benchmark does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def thread_count(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads; the caller's count is back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
