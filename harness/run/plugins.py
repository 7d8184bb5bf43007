"""Variant plugins: installed entry points and ``--plugin path/to/file.py | package.module``.

A plugin is ordinary Python whose ``@register`` calls add variants when it is
imported. Installed distributions advertise theirs in the entry point group
``attnbench.variants`` (each entry point names a module); they are discovered
with no flag. A plugin that fails to import, registers a duplicate name, or
registers a variant whose signature cannot take ``(q, k, v, *, causal,
scale)`` costs one warning line naming the plugin and the problem -- and only
its own variants: everything else still runs. A variant that returns the
wrong shape or dtype is caught on its first call (`harness.measure.contract`):
its sweep rows are errors saying so, and ``attnbench check`` fails it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

from variants import get_variant, list_variants, unregister
from variants.masks import NONE

ENTRY_POINT_GROUP = "attnbench.variants"
_discovered = False


class PluginError(Exception):
    """A plugin could not be loaded; the message names it and says why."""


class PluginWarning(UserWarning):
    """A plugin, or one of its variants, was left out; the message says which and why."""


def _import_file(path: Path) -> ModuleType:
    # A name derived from the path: two plugin files called variants.py do not collide.
    name = f"attnbench_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {path}: not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_plugin(target: str) -> ModuleType:
    """Import one plugin given as a ``.py`` path or a dotted module name; `PluginError` if it fails.

    Variants it registers that break the contract are removed again, with a `PluginWarning`.
    """
    before = set(list_variants())
    try:
        if target.endswith(".py") or "/" in target:
            path = Path(target).resolve()
            if not path.is_file():
                raise PluginError(f"plugin {target}: no such file")
            module = _import_file(path)
        else:
            module = importlib.import_module(target)
    except PluginError:
        raise
    except Exception as exc:  # any failure inside the plugin's own code is the plugin's problem
        raise PluginError(f"plugin {target}: {type(exc).__name__}: {_first_line(exc)}") from exc
    finally:
        _drop_broken(set(list_variants()) - before, target)
    return module


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def signature_problem(name: str) -> str | None:
    """Why a registered variant's signature cannot take the harness's call, or None.

    Inspects, never calls: plugin code runs only where a crash is contained (a
    sweep's worker) or was asked for (``attnbench check``). Wrong output
    shapes and dtypes are caught there, on the first call of each case.
    """
    spec = get_variant(name)
    q = torch.zeros(())
    masking = {"mask": NONE} if spec.takes_mask else {"causal": False}
    keywords = {**masking, "scale": None, **({"seed": 0} if spec.randomized else {})}
    try:
        inspect.signature(spec.fn).bind(q, q, q, **keywords)
    except TypeError as exc:
        wanted = ", ".join(f"{k}=..." for k in keywords)
        return f"its signature cannot take (q, k, v, {wanted}): {exc}"
    except ValueError:  # no signature to inspect (a builtin): the call will tell
        pass
    return None


def _drop_broken(names: set[str], origin: str) -> None:
    for name in sorted(names):
        problem = signature_problem(name)
        if problem:
            unregister(name)
            warnings.warn(f"plugin {origin}: variant {name!r} left out: {problem}", PluginWarning, stacklevel=3)


def discover_entry_points() -> None:
    """Import every module advertised in the ``attnbench.variants`` entry point group (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"{entry.name} (entry point {entry.value}" + (f" of {entry.dist.name})" if entry.dist else ")")
        before = set(list_variants())
        try:
            entry.load()
        except Exception as exc:  # a broken installed plugin must never stop the tool
            warnings.warn(f"plugin {origin}: {type(exc).__name__}: {_first_line(exc)}", PluginWarning, stacklevel=2)
        finally:
            _drop_broken(set(list_variants()) - before, origin)


def load_plugins(targets: list[str], *, entry_points: bool = True) -> list[ModuleType]:
    """Entry points, then each target; a failing plugin is a `PluginWarning`, not an error."""
    if entry_points:
        discover_entry_points()
    modules = []
    for target in targets:
        try:
            modules.append(load_plugin(target))
        except PluginError as exc:
            warnings.warn(str(exc), PluginWarning, stacklevel=2)
    return modules
