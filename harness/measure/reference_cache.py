"""The float64 reference computed once per input set, and read by every variant measured on it.

The variants of one configuration and length are handed the same inputs
(`harness.measure.case.make_inputs` is a function of the case's shape, dtype,
input family, scale and seed), so their exact reference rows
(`harness.measure.accuracy.exact_rows`) are the same numbers. Computed for
each variant, they were about a tenth of a quick-preset sweep (at N = 4096,
H = 8, D = 64: 0.7 s a case on 2 cores, for every one of fifteen variants).
Each variant runs in a worker process of its own, so the first to need an input
set's rows writes them to a directory its sweep owns (`harness.run.executor.WorkerSlot`)
and the rest read them: a NumPy ``.npz`` file named by a hash of everything the
rows depend on, written atomically, read with ``allow_pickle=False``. A file
that is missing, torn or unreadable is computed again; rows over
``MAX_BYTES`` are not kept (a 64-head, 1024-row reference of a long batch).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from variants.masks import Mask
from variants.score_mods import ScoreMod

from .accuracy import ExactRows
from .case import Case

MAX_BYTES = 256 * 2**20


def input_set_key(case: Case, mask: Mask, score_mod: ScoreMod, max_rows: int) -> str:
    """A name for the exact rows of ``case``'s inputs under ``mask`` and ``score_mod``: equal for every case handed
    the same q, k, v (whatever its variant, mode or KV layout), different for any other."""
    inputs = (case.inputs.spec, case.batch, case.heads, case.n_heads_kv, case.n_q, case.seq_len, case.head_dim,
              case.dtype, case.device, case.seed, case.input_scale, case.kv_lens)  # fmt: skip
    described = json.dumps([inputs, mask.spec, score_mod.spec, max_rows], default=str)
    return hashlib.sha256(described.encode()).hexdigest()[:32]


class ReferenceCache:
    """Exact rows by input set, kept as files in ``directory`` (None: computed every time, nothing kept)."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None

    def get(self, key: str, compute: Callable[[], ExactRows]) -> ExactRows:
        """The rows stored under ``key``, or ``compute()``'s (then stored, when small enough)."""
        path = self.directory / f"{key}.npz" if self.directory else None
        found = _read(path) if path is not None and path.exists() else None
        if found is not None:
            return found
        exact = compute()
        if path is not None and exact.values.numel() * exact.values.element_size() <= MAX_BYTES:
            _write(path, exact)
        return exact


def _read(path: Path) -> ExactRows | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            rows, values = torch.from_numpy(data["rows"]), torch.from_numpy(data["values"])
            return ExactRows(rows, values, float(data["entropy"]), int(data["seeing"]))
    except (OSError, ValueError, KeyError, EOFError):  # torn or foreign: compute it again
        return None


def _write(path: Path, exact: ExactRows) -> None:
    """Write atomically (a temporary file renamed), so a reader in another worker never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            np.savez(file, rows=exact.rows.cpu().numpy(), values=exact.values.cpu().numpy(),
                     entropy=np.float64(exact.entropy), seeing=np.int64(exact.seeing))  # fmt: skip
        os.replace(temporary, path)
    except OSError:  # a full or read-only disk costs the sharing, not the case
        try:
            os.unlink(temporary)
        except (OSError, UnboundLocalError):
            pass
