"""The one way a case and a configuration are named, in the terminal, the tables, the figures and comparisons.

Pure data in, text out: a case's fields (`harness.measure.case.Case.to_dict`) or a results row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def config_label(row: Mapping[str, Any], shown: Iterable[str] = ()) -> str:
    """The one name of a configuration, from a case's fields or a results row: "cpu float32 fwd causal alibi", then
    for each column in ``shown`` (those that vary where the name is read) " · heads=16", the device's
    name as it is, and a run id first ("run-a · cpu ...")."""
    # A dimension at its default is not named (a value that is not a string is a row from before it: the same).
    named = [(c, row.get(c)) for c in ("mask", "score_mod", "inputs", "kv_layout", "kv_lens", "scope")]
    modified = [f"kv-lens:{value}" if c == "kv_lens" else value for c, value in named if isinstance(value, str)
                and value not in ("none", "gaussian", "contiguous", "equal", "attention")]  # fmt: skip
    if row.get("scope") in ("layer", "model"):  # which layer: "layer:swiglu:4096:14336"
        modified[-1] = f"{row['scope']}:{row.get('layer')}"
    model = [row["model"]] if isinstance(row.get("model"), str) and row["model"] else []
    label = " ".join([*model, row["device"], row["dtype"], row["mode"], *modified])
    crossing = row["mode"] != "decode" and row.get("q_len") not in (None, row.get("seq_len"))  # cross-attention
    if crossing and "q_len" not in shown:
        label += f" · q_len={row['q_len']}"
    for column in shown:
        if column == "run_id":
            label = f"{row[column]} · {label}"
        else:
            label += f" · {row[column]}" if column == "device_name" else f" · {column}={row[column]}"
    return label


def case_label(row: Mapping[str, Any], shown: Iterable[str] = ()) -> str:
    """The one name of a case: its variant and N, then its `config_label`: "sdpa N=1024 cpu float32 fwd causal"."""
    return f"{row['variant']} N={row['seq_len']} {config_label(row, shown)}"
