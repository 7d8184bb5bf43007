"""The figures of the workload dimensions: packed documents against their number, approximations across
input families (their errors, and their attention maps per family), and attention's share of a layer. Drawn with
`harness.report.figures`' helpers, in its style."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
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


def family_map_figure(families: dict, path: Path) -> Path | None:
    """One row per input family: exact attention's map on that family's inputs, then each approximation's, with
    its relative error against exact's (`harness.measure.attention_map`); None when the run stored none."""
    rows = [(family, by_name) for family, by_name in families.items() if by_name]
    if not rows:
        return None
    names = sorted({name for _, by_name in rows for name in by_name}, key=lambda name: (name != "exact", name))
    fig, axes = plt.subplots(len(rows), len(names), figsize=(2.1 * len(names), 2.3 * len(rows)), squeeze=False)
    for index, (row, (family, by_name)) in enumerate(zip(axes, rows)):
        exact = by_name.get("exact", {})
        reference = np.array(exact["matrix"]) if exact.get("status") == "ok" else None
        vmax = float(np.quantile(reference, 0.995)) if reference is not None else None
        for ax, name in zip(row, names):
            ax.set_xticks([])
            ax.set_yticks([])
            entry = by_name.get(name, {})
            if entry.get("status") != "ok":
                ax.text(0.5, 0.5, str(entry.get("status", "not drawn")), ha="center", va="center", fontsize=7)
            else:
                matrix = np.array(entry["matrix"])
                ax.imshow(matrix, cmap="viridis", vmin=0, vmax=vmax)
                if reference is not None and name != "exact":
                    error = np.linalg.norm(matrix - reference) / np.linalg.norm(reference)
                    ax.set_xlabel(f"rel. err {error:.2f}", fontsize=8)
            ax.set_title(name if index == 0 else "", fontsize=9)
        row[0].set_ylabel(family, fontsize=9)
    fig.suptitle("implied attention per input family (N=64, d=64, V = identity): exact, then each approximation", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def layer_share_figure(shares: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Attention's share of a decoder layer's time against N (`harness.analyze.layers`) on one axis: a line per
    model's layer (its batch named where it varies), a marker per variant; the dashed line is one half."""
    named = shares["model"].fillna(shares["config"])
    several = shares.groupby(named)["batch"].transform("nunique") > 1
    data = shares.assign(layer=[f"{n} · B={b}" if many else n for n, b, many in zip(named, shares["batch"], several)])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(data=data, x="seq_len", y="share", hue="layer", style="variant", markers=True, dashes=False, ax=ax)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("sequence length N")
    ax.set_ylabel("attention's share of the layer's time")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
