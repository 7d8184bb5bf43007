"""The attention variants and their registry.

Importing this package registers every built-in family (one module each).
Third-party variants register the same way with `register`, from anywhere.
"""

# Imported for their @register side effects, in listing order.
from . import chunked, compiled, hf, linear, local, lowrank, naive, packed, paged, performer, sdpa, xformers_mea  # noqa: E402,F401
from .registry import (
    ALL_MASKS,
    ALL_SCORE_MODS,
    DTYPES,
    UnknownVariant,
    Unsupported,
    VariantSpec,
    exact_flops,
    get_variant,
    list_variants,
    register,
    unregister,
)

__all__ = [
    "ALL_MASKS",
    "ALL_SCORE_MODS",
    "DTYPES",
    "UnknownVariant",
    "Unsupported",
    "VariantSpec",
    "exact_flops",
    "get_variant",
    "list_variants",
    "register",
    "unregister",
]
