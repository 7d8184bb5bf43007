"""Variant plugins: installed entry points and ``--plugin path/to/file.py | package.module``.

A plugin is ordinary Python whose ``@register`` calls add variants when it is
imported. Installed distributions advertise theirs in the entry point group
``attnbench.variants`` (each entry point names a module); they are discovered
with no flag; one that fails to import costs one warning line, never the
tool. A plugin named with ``--plugin`` that fails to import, registers a
duplicate name, calls ``sys.exit`` or ends its process is one error line and
exit status 2: what was asked for cannot run. A variant whose signature cannot
take ``(q, k, v, *, mask, scale)`` (or the original ``causal=``) costs one warning line naming the plugin
and the problem -- and only that variant: everything else still runs. A variant that returns the
wrong shape or dtype is caught on its first call (`harness.measure.contract`):
its sweep rows are errors saying so, and ``attnbench check`` fails it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import signal
import sys
import warnings
from pathlib import Path
from types import ModuleType

from .registry import get_variant, list_variants, unregister

ENTRY_POINT_GROUP = "attnbench.variants"
_discovered = False
_origins: dict[str, str] = {}  # variant name -> the --plugin target that registered it
_loaded: set[str] = set()  # the --plugin targets loaded in this process


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


def load_plugin(target: str, *, probe: bool = True) -> ModuleType:
    """Import one plugin given as a ``.py`` path or a dotted module name; `PluginError` if it fails.

    Variants it registers that break the contract are removed again, with a `PluginWarning`. ``probe``:
    import it in a forked child first (`_ends_no_process`); a worker, whose death is already a row, skips that.
    """
    before = set(list_variants())
    try:
        if probe:
            _ends_no_process(target)
        module = _import(target)
    except PluginError:
        raise
    except SystemExit as exc:  # sys.exit() at import must not end the tool, silently, with status 0
        raise PluginError(f"plugin {target}: called sys.exit({exc.code!r}) while being imported") from None
    except Exception as exc:  # any failure inside the plugin's own code is the plugin's problem
        raise PluginError(f"plugin {target}: {type(exc).__name__}: {_first_line(exc)}") from exc
    finally:
        _drop_broken(set(list_variants()) - before, target)
    _origins.update(dict.fromkeys(set(list_variants()) - before, target))
    _loaded.add(target)
    return module


def plugins_for(variants: list[str] | set[str], plugins: list[str]) -> list[str]:
    """Of ``plugins`` (loaded here), those that registered one of ``variants``: all a worker measuring them loads.

    A plugin's side effects (a patched clock, a changed default dtype) then reach only its own variants. Where
    a plugin was not loaded in this process (a Ray node's copy), what it registered is unknown: all of them."""
    if not set(plugins) <= _loaded:
        return list(plugins)
    wanted = {_origins.get(name) for name in variants}
    return [plugin for plugin in plugins if plugin in wanted]


def _import(target: str) -> ModuleType:
    if target.endswith(".py") or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise PluginError(f"plugin {target}: no such file")
        return _import_file(path)
    return importlib.import_module(target)


def _ends_no_process(target: str) -> None:
    """Import ``target`` first in a forked child, output discarded: a plugin that ends its process at import
    (``os._exit``, a signal) ends the child, and is a `PluginError` here instead of a silent exit. Any other
    failure is left to the real import, which says what it was."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import, say so, and end without running any of the parent's exit handlers
        os.close(read)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            _import(target)
        except BaseException:  # noqa: BLE001 - the parent's own import reports it
            pass
        os.write(write, b"returned")
        os._exit(0)
    os.close(write)
    try:
        _, status = os.waitpid(pid, 0)  # first: a process the plugin started may hold the pipe open for long
        os.set_blocking(read, False)
        try:
            returned = os.read(read, 64)
        except BlockingIOError:
            returned = b""
    finally:
        os.close(read)
    if not returned:
        code = os.waitstatus_to_exitcode(status)
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        raise PluginError(f"plugin {target}: ended its process while being imported ({how})")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _drop_broken(names: set[str], origin: str) -> None:
    for name in sorted(names):
        problem = get_variant(name).signature_problem()  # inspects, never calls: plugin code runs in a worker
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


def load_plugins(targets: list[str], *, entry_points: bool = True, probe: bool = True) -> list[ModuleType]:
    """Entry points, then each target. An installed plugin that fails is a `PluginWarning` (it must never stop
    the tool); a target named by the user that fails is a `PluginError`: what was asked for cannot run."""
    if entry_points:
        discover_entry_points()
    return [load_plugin(target, probe=probe) for target in targets]
