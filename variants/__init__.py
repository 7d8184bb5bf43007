"""The attention variants and their registry.

Importing this package registers every built-in family (one module each).
Third-party variants register the same way with `register`, from anywhere.
"""

from .registry import (
    DTYPES,
    Unsupported,
    VariantSpec,
    exact_flops,
    get_variant,
    list_variants,
    register,
    unregister,
)

# Imported for their @register side effects, in listing order.
from . import naive, sdpa, chunked, linear, performer, xformers_mea  # noqa: E402,F401

__all__ = [
    "DTYPES",
    "Unsupported",
    "VariantSpec",
    "exact_flops",
    "get_variant",
    "list_variants",
    "register",
    "unregister",
]
