"""Declared complexity classes ("O(N^2 d)", "O(N m d)") read as powers of N, in one place.

The registry stores a variant's declared time and memory classes as the
strings its author wrote; the budget (is the memory quadratic?) and the fits
(does the fitted exponent agree?) both need the power of N they state.
"""

from __future__ import annotations

import re


def declared_exponent(complexity: str | None) -> float | None:
    """The power of N in a declared class: 'O(N^2 d)' -> 2, 'O(N²)' -> 2, 'O(N m d)' -> 1, 'O(1)' -> None."""
    if not isinstance(complexity, str):
        return None
    text = complexity.replace("²", "^2").replace("**", "^")
    power = re.search(r"\bN\s*\^\s*(\d+(?:\.\d+)?)", text)
    if power:
        return float(power.group(1))
    return 1.0 if re.search(r"\bN\b", text) else None
