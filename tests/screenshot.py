"""The report's first screen as a PNG, taken with a real headless Chromium (Debian's ``chromium``).

    python tests/screenshot.py report/reference-cpu/index.html report/screenshots/reference-cpu-first-screen.png

What a reader sees on opening the report in a 1400x1000 window: the README and
the closing notes show it. Needs playwright (``.[dev]``) and a chromium binary.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


def first_screen(index: Path, out: Path, width: int = 1400, height: int = 1000) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on this machine (apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(index.resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(out), full_page=False)
        browser.close()
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    print(first_screen(Path(sys.argv[1]), Path(sys.argv[2])))
