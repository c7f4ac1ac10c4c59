"""Headless Chromium (Debian's `chromium` and `chromium-driver`, see `make browser`)
driven by Selenium, for the report's rendering test and the README's screenshot:

    python -m tests.browser REPORT.html OUT.png [HEIGHT]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH = 1280
# flags that keep a headless Chromium quiet and offline (no sync, updates or QUIC probes)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--window-size={WIDTH},1000")


def available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium() -> Iterator[Any]:
    """A Selenium driver of a fresh headless Chromium profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, out: Path, height: int | None = None) -> Path:
    """The page at WIDTH wide and `height` tall (default: the whole page) as a PNG."""
    full = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(WIDTH, height or full)
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    return out


def main(argv: list[str]) -> None:
    report, out = Path(argv[0]).resolve(), Path(argv[1])
    with chromium() as driver:
        driver.get(report.as_uri())
        screenshot(driver, out, int(argv[2]) if len(argv) > 2 else None)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
