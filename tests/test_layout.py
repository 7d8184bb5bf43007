"""The harness's shape: stage packages that import only from earlier stages, small modules, short functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "harness"
STAGES = ["measure", "verify", "run", "analyze", "report"]  # the flow; cli.py sits above them all
MODULES = sorted(p for p in HARNESS.rglob("*.py"))
SIZED = MODULES + sorted((ROOT / "variants").rglob("*.py"))  # the registry and its families keep the same limits


def stage_of(module: str) -> str | None:
    """'harness.run.runner' -> 'run'; the CLI and the package root -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in STAGES else None


def imported_modules(path: Path) -> set[str]:
    """Every harness module ``path`` imports, resolved to absolute dotted names, at any depth of the file."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            name = ".".join(part for part in (base, node.module or "") if part)
            # "from . import parsers" imports the module harness.<stage>.parsers, not the package
            found.update([name] if node.module else [f"{name}.{alias.name}" for alias in node.names])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("harness.")}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_stage_imports_only_itself_and_earlier_stages(path):
    here = stage_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
    if here is None:
        return
    for name in imported_modules(path):
        there = stage_of(name)
        assert there is not None, f"{path.name} imports {name}, outside the stage packages"
        assert STAGES.index(there) <= STAGES.index(here), f"{path.name} ({here}) imports {name} ({there}): against the flow"


@pytest.mark.parametrize("path", SIZED, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    source = path.read_text()
    assert len(source.splitlines()) <= 300, f"{path.name}: {len(source.splitlines())} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= 80, f"{path.name}:{node.lineno} {node.name} is {length} lines"


def test_analysis_and_report_read_results_without_the_variant_registry():
    """A run folder is data: reporting it needs no variant, plugin or kernel importable."""
    code = (
        "import sys, harness.report.build, harness.analyze.compare, harness.report.export\n"
        "print(sorted(m for m in sys.modules if m == 'variants' or m.startswith('variants.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
