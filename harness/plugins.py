"""Load variant plugins: a ``path/to/file.py`` or an importable ``package.module``.

A plugin is ordinary Python whose ``@register`` calls add variants when it is
imported. Loading failures raise `PluginError` with one line naming the
plugin and the problem.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


class PluginError(Exception):
    """A plugin could not be loaded; the message names it and says why."""


def load_plugin(target: str) -> ModuleType:
    """Import a plugin given as a ``.py`` path or a dotted module name."""
    looks_like_path = target.endswith(".py") or "/" in target or Path(target).suffix == ".py"
    try:
        if looks_like_path:
            path = Path(target).resolve()
            if not path.is_file():
                raise PluginError(f"plugin {target}: no such file")
            # A name derived from the path: two plugin files called variants.py do not collide.
            name = f"attnbench_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
            if name in sys.modules:
                return sys.modules[name]
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise PluginError(f"plugin {target}: not a loadable Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
            return module
        return importlib.import_module(target)
    except PluginError:
        raise
    except Exception as exc:  # any failure inside the plugin's own code is the plugin's problem
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PluginError(f"plugin {target}: {type(exc).__name__}: {first}") from exc


def load_plugins(targets: list[str]) -> list[ModuleType]:
    return [load_plugin(t) for t in targets]
