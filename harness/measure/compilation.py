"""What ``torch.compile`` did in this process: how many graphs TorchDynamo has compiled so far.

`measure_case` reads the count around a case's first calls (a variant that
compiled there gets a ``compile_s``) and around its timing (a recompile there
-- a guard that failed on new shapes, dtypes or globals -- puts compilation
inside the samples, and the row says so). Dynamo's own counters, read only
when dynamo is loaded: importing it would cost a variant that never compiles.
"""

from __future__ import annotations

import sys


def compiled_graphs() -> int:
    """Graphs TorchDynamo compiled in this process so far (0 if it never ran)."""
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def recompile_warning(graphs: int) -> str:
    """The row warning for ``graphs`` compiled while the case was being timed."""
    return (
        f"torch.compile compiled {graphs} graph(s) while this case was timed (a guard failed: new shapes, dtypes "
        "or globals), so some samples may include compilation"
    )
