"""The README and docs/ point only inside the repository, at files that exist; the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "results" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(page):
    for target in LINK.findall(page.read_text()):
        path = target.split("#", 1)[0]
        if not path:  # an anchor in the same page
            continue
        assert "://" not in target, f"{page.name}: {target} leaves the repository"
        resolved = (page.parent / path).resolve()
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.name}: {target} does not exist"


def test_the_readme_is_short_and_its_quick_start_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet --disable-pip-version-check torch==2.13.0" in ci and "torch==2.13.0" in readme
    assert "-e '.[xformers,ray,hf,dev]'" in ci and "pip install -e '.[xformers,ray,hf,dev]' && pytest" in readme
