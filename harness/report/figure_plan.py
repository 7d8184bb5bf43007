"""Which of the report's figures a run gets, and for each one left out, the sentence that says why.

Any run the sweep can produce reports (decode only, N = 1, every error zero,
nothing ok): a figure is drawn from the ok rows it can place on its log axes,
and left out with a reason where there are none, never with a traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..analyze.families import family_table
from ..analyze.layers import layer_share_table
from ..analyze.packing import packing_table
from ..analyze.tables import with_config
from .dimension_figures import families_figure, family_map_figure, layer_share_figure, packing_figure
from .figures import (
    accuracy_figure,
    attention_map_figure,
    decode_figure,
    discard_open_figures,
    exponent_figure,
    memory_figure,
    palette,
    speedup_figure,
    throughput_figure,
    time_figure,
    tradeoff_figure,
)
from .launch_marks import flagged


def _positive(data: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows whose ``column`` can sit on a log axis (finite, above zero) and whose N can too."""
    values = pd.to_numeric(data[column], errors="coerce")
    keep = np.isfinite(values) & (values > 0) & (data["seq_len"] > 0)
    return data[keep].assign(**{column: values[keep]})


def _time_samples(ok: pd.DataFrame) -> pd.DataFrame:
    samples = ok[["config", "variant", "seq_len", "time_samples_s", "launch_bound"]].explode("time_samples_s")
    return samples.assign(time_samples_s=pd.to_numeric(samples["time_samples_s"], errors="coerce"))


def _several_families(table: pd.DataFrame) -> pd.DataFrame:
    """The approximations' rows, when they span more than one input family (else nothing to set side by side)."""
    return table if table["inputs"].nunique() > 1 else table.iloc[0:0]


# What each figure draws, the rows it needs (from the ok rows), and why it is left out when there are none.
NEEDS = {
    "time": (lambda ok: _positive(_time_samples(ok), "time_samples_s"), "no ok case has a timing sample"),
    "memory": (lambda ok: _positive(ok, "peak_mem_bytes"), "no ok case has a measured peak memory"),
    "speedup": (lambda ok: _positive(ok, "time_median_s"), "no ok case has a time"),
    "throughput": (lambda ok: _positive(ok[ok["mode"] != "decode"], "gflops_per_s"), "no ok non-decode case has a GFLOP/s"),
    "decode": (lambda ok: _positive(ok[ok["mode"] == "decode"], "gbytes_per_s"), "the run has no ok decode case"),
    "packing": (lambda ok: _positive(packing_table(ok), "time_median_s"), "the run has no ok packed-document case"),
    "families": (lambda ok: _several_families(family_table(ok)), "the run measured approximations on one input family"),
    "layer_share": (lambda ok: layer_share_table(ok), "the run has no layer case with its attention beside it (--scope layer)"),
    "accuracy": (lambda ok: _positive(ok, "rel_err"), "every ok case's error is zero or unmeasured: nothing for a log axis"),
    "tradeoff": (
        lambda ok: _positive(_positive(ok, "rel_err"), "time_median_s"),
        "no ok case has both a time and an error above zero: nothing for log axes",
    ),
}  # fmt: skip


class Omitted(str):
    """Why a figure is not in the report: one sentence, shown where it would have been."""


def _draw(name: str, ok: pd.DataFrame, colours: dict, ceilings: dict, fits: pd.DataFrame, baseline: str, out: Path):
    if name == "exponents":
        return exponent_figure(fits, colours, out / "exponents.png") or Omitted("no configuration has enough N for a fit")
    select, why = NEEDS[name]
    data = select(ok)
    if data.empty:
        return Omitted(why)
    draw = {
        "time": lambda: time_figure(data, colours, out / "time_vs_n.png"),
        "memory": lambda: memory_figure(data, colours, out / "memory_vs_n.png"),
        "speedup": lambda: (
            speedup_figure(data, colours, baseline, out / "speedup.png")
            or Omitted(f"the baseline variant {baseline} has no ok case to compare with")
        ),
        "throughput": lambda: throughput_figure(data, colours, ceilings, out / "gflops_vs_n.png"),
        "decode": lambda: decode_figure(data, colours, ceilings, out / "decode_gbps.png"),
        "packing": lambda: packing_figure(data, colours, out / "packing.png"),
        "families": lambda: families_figure(data, colours, out / "families.png"),
        "layer_share": lambda: layer_share_figure(data, colours, out / "layer_share.png"),
        "accuracy": lambda: accuracy_figure(data, colours, out / "accuracy_vs_n.png"),
        "tradeoff": lambda: tradeoff_figure(data, colours, out / "error_vs_time.png"),
    }
    return draw[name]()


def make_figures(
    frame: pd.DataFrame,
    fits: pd.DataFrame,
    ceilings: dict,
    maps: dict,
    out: Path,
    baseline: str,
    family_maps: dict | None = None,
) -> dict[str, Path | Omitted]:
    """Write every figure under ``out``; returns {name: path}, or {name: Omitted(why)} for one with nothing to draw.

    Any run the sweep can produce reports: a figure whose data cannot be drawn (no rows, no value a log axis
    can hold) is left out with a sentence, and one that fails anyway is left out with the error, never a traceback.
    """
    out.mkdir(parents=True, exist_ok=True)
    ok = flagged(with_config(frame[frame["status"] == "ok"]))  # the figures of time draw launch-bound points hollow
    figures: dict[str, Path | Omitted] = {}
    colours = palette(frame)
    for name in [*NEEDS, "exponents"]:
        if ok.empty:
            figures[name] = Omitted("no case finished ok")
            continue
        try:
            figures[name] = _draw(name, ok, colours, ceilings, fits, baseline, out)
        except OSError:  # a full disk is no fault of the data: the report fails, in one line, and can be written again
            discard_open_figures()
            raise
        except Exception as error:  # noqa: BLE001 — the report is written whatever one figure's data holds
            discard_open_figures()
            figures[name] = Omitted(f"could not be drawn ({type(error).__name__}: {error})")
    figures["maps"] = attention_map_figure(maps, out / "attention_maps.png") or Omitted("the run stored no attention maps")
    figures["family_maps"] = family_map_figure(family_maps or {}, out / "family_maps.png") or Omitted(
        "the run measured one input family"
    )
    return figures
