"""Energy per call and work per joule: the rows measured with ``--energy`` (`harness.measure.energy`).

One row per such case: its configuration, variant and N, the mean power over its energy window, the joules
per call, and TFLOP/s per watt: the call's FLOPs over its joules (TFLOP per joule is TFLOP/s per watt), both
from the energy window, where the calls ran back to back with the L2 warm. (The achieved TFLOP/s of the row
is timed apart, each call with a cold L2, so dividing it by the window's power would mix two conditions.) A
row without a FLOP count (an approximation with no work model) has no efficiency. Pure pandas over results
rows.
"""

from __future__ import annotations

import pandas as pd

from ..measure.record import MEASURED
from .tables import with_config

COLUMNS = ["config", "variant", "seq_len", "power_w", "energy_j", "tflops_per_watt"]


def energy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per measured case with an energy reading: power (W), energy per call (J), TFLOP/s per watt."""
    if "energy_j" not in frame:
        return pd.DataFrame(columns=COLUMNS)
    rows = frame[frame["status"].isin(MEASURED) & frame["energy_j"].notna() & frame["power_w"].gt(0)]
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = with_config(rows)
    rows = rows.assign(tflops_per_watt=rows["flops"] / rows["energy_j"] / 1e12)
    return rows[COLUMNS].sort_values(["config", "variant", "seq_len"]).reset_index(drop=True)
