"""How the report shows launch-bound rows (`harness.analyze.launch`): hollow in the figures, counted in words.

A launch-bound row's time is the host's launch rate, not the kernel's. It stays in every table and figure --
hiding it would hide that the run could not time the kernel there -- but a reader must not take its point for
a measurement of the kernel, nor wonder why the findings skip it: its marker is drawn hollow (no face, the edge
in its line's colour) with a legend entry saying why, and the report counts such rows and says where they
are left out.
"""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..analyze.launch import launch_bound
from ..analyze.tables import with_config
from ..measure.record import MEASURED

HOLLOW_LEGEND = "hollow: launch-bound (host-limited) — left out of fits and findings"
FLAG = "launch_bound"  # the column the figures read (set by `harness.report.figure_plan`)


def _same_colour(a, b) -> bool:
    return np.allclose(mcolors.to_rgba(a), mcolors.to_rgba(b), atol=1e-3)


def _hollow_points(ax, line: Line2D, flagged: set) -> Line2D | None:
    """Draw ``line``'s markers at the N in ``flagged`` hollow; returns the hollow markers, None if none.

    The line keeps its path through every point (the curve as measured), but its own filled markers are
    dropped at those N (``markevery``) so that the hollow ones are not drawn over a filled one.
    """
    xs, ys = np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)
    hit = np.isin(xs, sorted(flagged))
    if not hit.any():
        return None
    line.set_markevery([bool(keep) for keep in ~hit])
    (hollow,) = ax.plot(xs[hit], ys[hit], linestyle="", marker=line.get_marker(), markersize=line.get_markersize(),
                        markerfacecolor="none", markeredgecolor=line.get_color(),
                        markeredgewidth=max(1.3, line.get_markeredgewidth()), zorder=line.get_zorder() + 0.1)  # fmt: skip
    return hollow


def hollow_launch_bound(grid, data: pd.DataFrame, colours: dict, x: str = "seq_len") -> list[Line2D]:
    """On a seaborn FacetGrid of one panel per ``config`` and one line per ``variant`` (coloured by ``colours``),
    draw the points of ``data`` flagged ``launch_bound`` hollow, and add the legend entry saying what hollow means.

    Returns the hollow markers drawn (none when ``data`` has no flagged row or no ``launch_bound`` column).
    """
    if FLAG not in data or not data[FLAG].any():
        return []
    flagged = data[data[FLAG].astype(bool)].groupby(["config", "variant"])[x].agg(set)
    drawn = []
    for config, ax in grid.axes_dict.items():
        for (where, variant), ns in flagged.items():
            if where != config or variant not in colours:
                continue
            for line in ax.get_lines():  # the variant's line: its colour is the variant's, one per variant
                if line.get_marker() not in (None, "", "None") and _same_colour(line.get_color(), colours[variant]):
                    drawn += [h for h in [_hollow_points(ax, line, ns)] if h is not None]
    if drawn:
        _legend_below(grid.figure)
    return drawn


def _legend_below(fig) -> None:
    """The legend entry for hollow markers, centred under everything the panels draw (their N labels included):
    seaborn's own legend sits beside the panels and holds one entry per variant, not per kind of point."""
    renderer = fig.canvas.get_renderer()
    bottom = min(ax.get_tightbbox(renderer).y0 for ax in fig.axes) / fig.bbox.height  # in figure fractions
    key = Line2D([], [], linestyle="", marker="o", markerfacecolor="none", markeredgecolor="dimgrey", markersize=7)
    fig.legend([key], [HOLLOW_LEGEND], loc="upper center", bbox_to_anchor=(0.5, bottom), frameon=False, fontsize=9)


def flagged(ok: pd.DataFrame) -> pd.DataFrame:
    """``ok`` with the ``launch_bound`` column the figures read."""
    return ok.assign(**{FLAG: launch_bound(ok)})


def launch_bound_line(frame: pd.DataFrame) -> str | None:
    """The measurement-quality sentence on a run's launch-bound rows: how many, and where they are left out;
    None when it has none."""
    measured = frame[frame["status"].isin(MEASURED)]
    count = int(launch_bound(measured).sum())
    if not count:
        return None
    return (f"{count} of {len(measured)} timed cases launch-bound (the GPU finished each call before the host had "
            "queued the next: the time is the host's launch rate, not the kernel's): kept in the tables with their "
            "warning and drawn hollow in the figures, but left out of the complexity fits, the crossovers and the "
            "fastest-variant findings.")  # fmt: skip


def launch_bound_finding(frame: pd.DataFrame) -> dict | None:
    """A findings entry listing, per configuration and variant, the N whose ok rows are launch-bound; None if none."""
    ok = with_config(frame[frame["status"] == "ok"])
    host = ok[launch_bound(ok)]
    if host.empty:
        return None
    rows = [{"configuration": config, "variant": variant,
             "launch-bound at N": ", ".join(f"{n:,}" for n in sorted(group["seq_len"]))}
            for (config, variant), group in host.groupby(["config", "variant"], sort=True)]  # fmt: skip
    return {"title": "Launch-bound cases, left out of the findings",
            "table": pd.DataFrame(rows, columns=["configuration", "variant", "launch-bound at N"]),
            "note": launch_bound_line(frame) + " Timing them as CUDA graph replays (--cuda-graphs) removes the "
                    "launch gaps."}  # fmt: skip
