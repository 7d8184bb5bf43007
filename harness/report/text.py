"""Tables as text: Markdown for the report's summary, aligned plain text for the terminal."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..measure.labels import case_label


def cell_text(value: Any, digits: int = 4) -> str:
    """One cell as text: floats to ``digits`` significant digits, missing values empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown_text(text: str) -> str:
    """``text`` from the data (a reason, a variant's name) as inert Markdown: on one line, its HTML escaped,
    so a viewer shows what was recorded and runs none of it."""
    return html.escape(str(text), quote=False).replace("\r", " ").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` ("_none_" when it is empty)."""
    if frame.empty:
        return "_none_\n"

    def cell(value: Any) -> str:
        return markdown_text(cell_text(value)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def plain_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned plain-text table of ``columns`` (keys of each row)."""
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def comparison_text(table: pd.DataFrame, metric: str, threshold: float, adjusted: bool = True) -> str:
    """`harness.analyze.compare.compare_runs`'s table for the terminal: one line per case, then how the
    machine's speed differed (the canaries) and the verdict counts."""
    unit, scale = ("ms", 1e3) if metric == "time" else ("MiB", 2**-20)

    def value(x: float) -> str:
        return "-" if pd.isna(x) else f"{x * scale:.4g}"

    varying = [c for c in ("heads_kv", "q_len") if len(table) and table[c].nunique() > 1]
    varying = [c for c in varying if c != "q_len" or (table["mode"] == "decode").all()]  # q_len is N elsewhere
    shown = [
        {
            "verdict": r["verdict"],
            "case": case_label(r, varying),
            f"base {unit}": value(r["base"]),
            f"new {unit}": value(r["new"]),
            "new/base": "-" if pd.isna(r["ratio"]) else f"{r['ratio']:.3f}",
            "95% interval": "-" if pd.isna(r["ratio_low"]) or metric != "time" else f"{r['ratio_low']:.3f}-{r['ratio_high']:.3f}",
        }
        for r in table.to_dict("records")
    ]
    counts = table["verdict"].value_counts().to_dict() if len(table) else {}
    total = f"{metric}, threshold {threshold:.0%}: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    speeds = table["speed"].dropna() if "speed" in table else pd.Series(dtype=float)
    if metric == "time" and len(speeds):
        speed = float(speeds.median())
        how = "times compared at one speed (each in its run's canary units)" if adjusted else "times compared as measured"
        total = (f"machine speed (the canary, new/base): {speed:.3f}, i.e. the new run's machine was "
                 f"{abs(speed - 1):.0%} {'slower' if speed > 1 else 'faster'}; {how}\n") + total  # fmt: skip
    return (plain_table(shown, list(shown[0])) + "\n" if shown else "") + total


def variants_text(rows: list[dict[str, Any]]) -> str:
    """``attnbench list``: one line per variant (`variants.VariantSpec.describe` rows)."""
    shown = [
        {
            **r,
            "exact": "yes" if r["exact"] else "no",
            "time": r["time"] or "-",  # no declared class
            "memory": r["memory"] or "-",
            "masks": "all" if len(r["masks"]) == 6 else ",".join(r["masks"]),
            "score mods": ",".join(m for m in r["score_mods"] if m != "none") or "-",
            "devices": ",".join(r["devices"]),
            "params": ",".join(f"{k}={v}" for k, v in r["params"].items()) or "-",
            "available here": "yes" if r["available"] else f"no: {r['unavailable_reason']}",
        }
        for r in rows
    ]
    columns = ["name", "family", "exact", "time", "memory", "masks", "score mods", "devices", "params", "available here"]
    return plain_table(shown, columns)


def ceilings_text(ceilings: dict) -> str:
    """``attnbench calibrate``: the measured matmul and copy ceilings (`harness.measure.ceilings`)."""
    n = ceilings["matmul_size"]
    lines = [f"matmul {n}x{n} {dtype:9} {gflops:10.1f} GFLOP/s" for dtype, gflops in ceilings["matmul_gflops"].items()]
    lines.append(f"copy {ceilings['copy_bytes'] / 2**20:.0f} MiB        {ceilings['copy_gbps']:10.1f} GB/s (read + write)")
    return "\n".join(lines)
