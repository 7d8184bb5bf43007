"""`Sweep`: the grid of cases, one field per row of `harness.measure.fields.FIELDS` (its alias rows aside).

Its own module, so the presets (`harness.run.presets`) and the sweep's building and expansion
(`harness.run.sweep`) both take it from here.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass, replace
from typing import Any

from ..measure.fields import SWEEP_FIELDS, plain


class _SweepMethods:
    def to_dict(self) -> dict[str, Any]:
        """The sweep as JSON data (``sweep.json``): masks as their specs, tuples as lists."""
        return {f.name: plain(getattr(self, f.name)) for f in SWEEP_FIELDS}

    def subgrids(self) -> list[Sweep]:
        """The grids whose union is the sweep: each sub-grid over this sweep, or the sweep itself."""
        return [replace(self, **grid, grids=()) for grid in self.grids] or [self]


def _default(value: Any):
    """A field's default: a callable is a factory (threads: torch's count now), a dict a fresh copy per sweep."""
    if callable(value):
        return field(default_factory=value)
    if isinstance(value, dict):
        return field(default_factory=lambda: dict(value))
    return field(default=value)


# A grid of cases, one field per row of `harness.measure.fields.FIELDS` (its alias rows aside).
# ``variants == ("all",)`` means every variant available on the device.
Sweep = make_dataclass("Sweep", [(f.name, Any, _default(f.default)) for f in SWEEP_FIELDS], bases=(_SweepMethods,),
                       frozen=True)  # fmt: skip
Sweep.__module__ = __name__  # where it is defined, for pickling (Ray) and reprs
Sweep.__doc__ = "A grid of cases; its fields are the rows of `harness.measure.fields.FIELDS`."
