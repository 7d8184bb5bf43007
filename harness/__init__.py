"""The measurement harness: reference, cases, timing, memory, runner, results, report, CLI."""

from .reference import reference_attention

__all__ = ["reference_attention"]
