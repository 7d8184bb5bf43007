"""The report's figures: seaborn over the results table, one PNG each.

Every figure facets by configuration (run, device, dtype, mode, causal) and
colours by variant with one palette across all figures, so a variant keeps
its colour everywhere. Axes are log-log where the quantity spans decades. Figures of time against N draw
launch-bound points hollow (`harness.report.launch_marks`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

from ..measure.complexity import declared_exponent  # noqa: E402
from .launch_marks import hollow_launch_bound  # noqa: E402

DPI = 110
COL_WRAP = 3  # panels per row: at the report's 1400 px, three stay legible
TITLE_WIDTH = 44  # characters a panel title takes before it wraps (a third of the page, at 10 pt)
FIGURE_WIDTH_IN = 13.5  # the page's width at DPI: figures are shown at full width, not scaled up
EXPONENT_AXIS = (-0.5, 3.5)  # fitted exponents beyond these are drawn at the edge with their value


# Colour says what kind of variant a line is; shades and markers tell the variants of a kind apart.
KIND_SHADES = {"exact": "Blues", "approximation": "Oranges", "compiled": "Greens", "plugin": "Purples"}
MARKERS = "osD^vP*XhpH<>d8"


def kind_of(family: str, exact: bool) -> str:
    """exact, approximation, compiled or plugin: the colour family a variant is drawn in."""
    if family in ("compiled", "plugin"):
        return family
    return "exact" if exact else "approximation"


def palette(frame: pd.DataFrame) -> dict[str, tuple]:
    """One colour per variant of ``frame`` (its variant, family and exact columns): a shade of its kind's colour,
    darkest first, stable for a given set of variants."""
    kinds: dict[str, list[str]] = {}
    for variant, family, exact in sorted(set(zip(frame["variant"], frame["family"].fillna("plugin"), frame["exact"]))):
        kinds.setdefault(kind_of(family, bool(exact)), []).append(variant)
    colours = {}
    for kind, names in kinds.items():
        names = sorted(set(names))
        shades = sns.color_palette(KIND_SHADES[kind], len(names) + 2)[2:][::-1]  # the two palest are hard to see
        colours.update(zip(names, shades))
    return colours


def markers(colours: dict) -> dict[str, str]:
    """A marker per variant (the order of ``colours``' names), so that shades of one kind stay apart."""
    return {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(sorted(colours))}


def discard_open_figures() -> None:
    """Close whatever a figure that failed half-drawn left open."""
    plt.close("all")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _loglog(grid, ylabel: str, *, logy: bool = True) -> None:
    """Log-log axes, N ticks written as plain numbers (128, 1024, ...)."""
    for ax in grid.axes.flat:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelrotation=45)
        if logy:
            ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
    grid.set_axis_labels("sequence length N", ylabel)
    titles(grid)


def titles(grid) -> None:
    """Each panel titled with its configuration, wrapped: a long one ("cpu float32 decode causal-br paged:16
    kv-lens:drawn · batch=8 · ...") would run into its neighbour's."""
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.set_title(textwrap.fill(ax.get_title(), TITLE_WIDTH), fontsize=10)


def _wrap(data: pd.DataFrame, column: str = "config") -> int:
    """Facets per row: up to COL_WRAP, fewer when there are fewer panels."""
    return max(1, min(COL_WRAP, data[column].nunique()))


def _panel_size(panels: int) -> dict[str, float]:
    """seaborn's height and aspect for ``panels`` facets filling the page's width (the legend sits beside)."""
    width = (FIGURE_WIDTH_IN - 1.8) / min(panels, COL_WRAP)
    height = min(width / 1.5, 4.8)
    return {"height": height, "aspect": width / height}


def _curves(data: pd.DataFrame, y: str, ylabel: str, colours: dict, *, hollow: bool = False, **line) -> sns.FacetGrid:
    """One log-log panel per configuration, one line per variant; ``hollow``: a time, so its launch-bound points
    (``data``'s ``launch_bound`` column) are drawn hollow -- memory and error are the kernel's either way."""
    grid = sns.relplot(
        data=data, x="seq_len", y=y, hue="variant", col="config", col_wrap=_wrap(data), kind="line",
        palette=colours, style="variant", markers=markers(colours), dashes=False, **_panel_size(data["config"].nunique()),
        **line,
    )  # fmt: skip
    _loglog(grid, ylabel)
    if hollow:
        hollow_launch_bound(grid, data, colours)
    return grid


def time_figure(samples: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Median time per call vs N, with the interquartile range of the raw samples as a band (one row a sample)."""
    ylabel = "time per call (s), median and IQR"
    grid = _curves(samples, "time_samples_s", ylabel, colours, hollow=True, estimator="median", errorbar=("pi", 50))
    return _save(grid.figure, path)


def memory_figure(ok: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Peak memory vs N."""
    data = ok.assign(peak_mib=ok["peak_mem_bytes"] / 2**20)
    return _save(_curves(data, "peak_mib", "peak memory (MiB)", colours).figure, path)


def speedup_figure(ok: pd.DataFrame, colours: dict, baseline: str, path: Path) -> Path | None:
    """Baseline time / variant time vs N (above 1: faster than the baseline)."""
    base = ok[ok["variant"] == baseline][[c for c in ("config", "seq_len", "time_median_s", "launch_bound") if c in ok]]
    if base.empty:
        return None
    data = ok.merge(base, on=["config", "seq_len"], suffixes=("", "_base"))
    data["speedup"] = data["time_median_s_base"] / data["time_median_s"]
    if "launch_bound" in data:  # a ratio is only as good as its worse time: hollow when either side is launch-bound
        data["launch_bound"] = data["launch_bound"] | data["launch_bound_base"]
    grid = _curves(data, "speedup", f"speedup over {baseline}", colours, hollow=True)
    for ax in grid.axes.flat:
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
    return _save(grid.figure, path)


def throughput_figure(ok: pd.DataFrame, colours: dict, ceilings: dict, path: Path) -> Path:
    """Achieved GFLOP/s vs N, with the machine's measured matmul ceiling per facet."""
    grid = _curves(ok, "gflops_per_s", "achieved GFLOP/s", colours, hollow=True)
    for config, ax in grid.axes_dict.items():
        row = ok[ok["config"] == config].iloc[0]
        ceiling = ceilings.get((row["run_id"], row["device"]), {}).get("matmul_gflops", {}).get(row["dtype"])
        if ceiling:
            ax.axhline(ceiling, color="black", lw=1.0, ls="--")
            ax.annotate(f"matmul ceiling {ceiling:.0f} GFLOP/s", (0.02, 0.97), xycoords="axes fraction", va="top",
                        fontsize=8)  # fmt: skip
    return _save(grid.figure, path)


def decode_figure(decode: pd.DataFrame, colours: dict, ceilings: dict, path: Path) -> Path:
    """Decode: achieved GB/s against KV length, under the machine's measured copy bandwidth (the roofline)."""
    grid = _curves(decode, "gbytes_per_s", "achieved GB/s (q, K, V read, output written)", colours, hollow=True)
    for config, ax in grid.axes_dict.items():
        row = decode[decode["config"] == config].iloc[0]
        ceiling = ceilings.get((row["run_id"], row["device"]), {}).get("copy_gbps")
        if ceiling:
            ax.axhline(ceiling, color="black", lw=1.0, ls="--")
            ax.annotate(f"copy bandwidth {ceiling:.0f} GB/s", (0.02, 0.97), xycoords="axes fraction", va="top", fontsize=8)
    grid.set_axis_labels("KV length N", "achieved GB/s (q, K, V read, output written)")
    return _save(grid.figure, path)


def accuracy_figure(ok: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Relative error against float64 vs N (log-log; exact variants sit near dtype precision)."""
    return _save(_curves(ok, "rel_err", "relative error vs float64", colours).figure, path)


def tradeoff_figure(ok: pd.DataFrame, colours: dict, path: Path) -> Path:
    """Error vs time at the largest N every variant of a configuration reached."""
    points = []
    for _config, group in ok.groupby("config"):
        common = group.groupby("variant")["seq_len"].max().min()
        points.append(group[group["seq_len"] == common])
    data = pd.concat(points)
    data = data.assign(label=data["config"] + "  (N=" + data["seq_len"].astype(str) + ")")
    grid = sns.relplot(
        data=data, x="time_median_s", y="rel_err", hue="variant", col="label", col_wrap=_wrap(data, "label"), kind="scatter",
        palette=colours, style="variant", markers=markers(colours), s=70, **_panel_size(data["label"].nunique()),
    )  # fmt: skip
    grid.set(xscale="log", yscale="log")
    grid.set_axis_labels("time per call (s)", "relative error vs float64")
    titles(grid)
    return _save(grid.figure, path)


def exponent_figure(fits: pd.DataFrame, colours: dict, path: Path) -> Path | None:
    """Fitted exponents with 95% intervals per variant, beside the declared class (x).

    The axes span `EXPONENT_AXIS`; an exponent beyond it (a noisy fit, a curve
    that fell) is drawn as a triangle at the edge, labelled with its value.
    """
    if fits.empty:
        return None
    configs = sorted(fits["config"].unique())
    variants = sorted(fits["variant"].unique())
    height = max(0.32 * len(variants) * max(1, len(configs) ** 0.5) + 1.8, 3.0)
    fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH_IN, height), sharey=True)
    offsets = np.linspace(-0.3, 0.3, len(configs)) if len(configs) > 1 else [0.0]
    markers = "osD^vpPh*X"  # no < or >: those mark an exponent off the axes
    low, high = EXPONENT_AXIS
    for ax, (what, lo, hi, declared, title) in zip(
        axes,
        [
            ("time_alpha", "time_ci_low", "time_ci_high", "declared_time", "time ~ N^alpha"),
            ("mem_beta", "mem_ci_low", "mem_ci_high", "declared_memory", "peak memory ~ N^beta"),
        ],
    ):
        for ci, config in enumerate(configs):
            rows = fits[fits["config"] == config].set_index("variant")
            for vi, variant in enumerate(variants):
                if variant not in rows.index or not np.isfinite(rows.loc[variant, what]):
                    continue
                r = rows.loc[variant]
                y = vi + offsets[ci]
                value = r[what]
                if not low <= value <= high:  # off the axes: at the edge, with its value, never silently dropped
                    edge = low if value < low else high
                    ax.plot(edge, y, "<" if value < low else ">", color=colours.get(variant), ms=8, clip_on=False)
                    ax.annotate(f"{value:.2f}", (edge, y), xytext=(-4 if value > high else 4, 5),
                                textcoords="offset points", ha="right" if value > high else "left", fontsize=8)  # fmt: skip
                else:
                    ax.errorbar(
                        value, y, xerr=[[max(value - r[lo], 0)], [max(r[hi] - value, 0)]],
                        fmt=markers[ci % len(markers)], color=colours.get(variant), capsize=3,
                    )  # fmt: skip
                expected = declared_exponent(r[declared])
                if expected is not None:
                    ax.plot(expected, y, "x", color="black", ms=7)
        ax.set_yticks(range(len(variants)), variants)
        ax.set_title(title + "  (x: declared class)")
        ax.set_xlim(low, high)
        ax.grid(True, axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], marker=markers[i % len(markers)], ls="", color="grey") for i in range(len(configs))]
    fig.legend(handles, configs, loc="lower center", ncol=min(4, len(configs)), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    legend_rows = -(-len(configs) // 4)
    fig.tight_layout(rect=(0, (0.3 + 0.22 * legend_rows) / height, 1, 1))
    return _save(fig, path)


def attention_map_figure(maps: dict, path: Path) -> Path | None:
    """Exact softmax's attention matrix beside each variant's (one head, structured inputs)."""
    panels = [(name, entry) for name, entry in maps.items()]
    if not panels:
        return None
    cols = min(6, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.9 * rows), squeeze=False)
    exact = np.array(maps["exact"]["matrix"]) if maps.get("exact", {}).get("status") == "ok" else None
    vmax = float(np.quantile(exact, 0.995)) if exact is not None else None
    for ax, (name, entry) in zip(axes.flat, panels):
        ax.set_xticks([])
        ax.set_yticks([])
        if entry.get("status") != "ok":
            reason = textwrap.fill(str(entry.get("reason", ""))[:140], 30)
            ax.text(0.5, 0.5, f"{entry.get('status')}\n\n{reason}", ha="center", va="center", fontsize=6.5)
            ax.set_title(name, fontsize=9)
            continue
        matrix = np.array(entry["matrix"])
        ax.imshow(matrix, cmap="viridis", vmin=0, vmax=vmax)
        title = name
        if exact is not None and name != "exact" and matrix.shape == exact.shape:
            title += f"\nrel. err {np.linalg.norm(matrix - exact) / np.linalg.norm(exact):.2f}"
        ax.set_title(title, fontsize=9)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("implied attention matrix A (rows: queries, columns: keys), via V = identity", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
