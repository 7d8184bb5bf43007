"""The figures of the workload dimensions: packed documents against their number, and approximations across
input families. Drawn with `harness.report.figures`' helpers, in its style."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from .figures import _loglog, _panel_size, _save, _wrap, markers


def packing_figure(packed: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Time against the number of documents packed into a fixed N (`harness.analyze.packing`), per variant: a
    kernel that skips the pairs between documents speeds up as they shorten; one that pads to the longest does not."""
    data = packed.assign(panel=[f"{config} N={n}" for config, n in zip(packed["config"], packed["seq_len"])])
    grid = sns.relplot(
        data=data, x="documents", y="time_median_s", hue="variant", col="panel", col_wrap=_wrap(data, "panel"),
        kind="line", palette=colours, style="variant", markers=markers(colours), dashes=False,
        **_panel_size(data["panel"].nunique()),
    )  # fmt: skip
    _loglog(grid, "time per call (s), median")
    grid.set_axis_labels("documents packed into N", "time per call (s), median")
    return _save(grid.figure, path)


def families_figure(table: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Each approximation's error (left, log) and top-8 recall (right) against the exact attention's entropy of
    its inputs (`harness.analyze.families`): which approximation survives sharp attention."""
    panels = {"rel_err": "relative error vs float64", "attn_recall": "top-8 recall of the implied map"}
    data = table.assign(N=table["seq_len"].map(lambda n: f"N={n}")).melt(
        id_vars=["variant", "N", "attn_entropy"], value_vars=list(panels), var_name="metric", value_name="value"
    ).dropna(subset=["value"])  # fmt: skip
    data = data.assign(metric=data["metric"].map(panels)).sort_values("attn_entropy")
    grid = sns.relplot(data=data, x="attn_entropy", y="value", hue="variant", style="N", col="metric", kind="line",
                       palette=colours, markers=True, dashes=False, sort=False, facet_kws={"sharey": False},
                       **_panel_size(data["metric"].nunique()))  # fmt: skip
    for name, ax in grid.axes_dict.items():
        ax.set_yscale("log" if name == panels["rel_err"] else "linear")
        ax.grid(True, which="major", alpha=0.3)
    grid.set_axis_labels("mean entropy of the exact attention rows (nats)", "")
    grid.set_titles("{col_name}")
    return _save(grid.figure, path)
