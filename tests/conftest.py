"""Fixtures shared by every test folder.

``browser``: a headless Chromium driven by Selenium (:class:`HeadlessBrowser`: ``open``,
``console_errors``, ``screenshot``, and the Selenium ``driver``), for tests that open HTML
(the report; later the live dashboard). Chromium and its driver come from Debian
(``make browser``; CI runs it before the tests). A test that asks for the browser is skipped,
with the reason, only when they are not installed. This machine has no internet: without the
flags below Chromium keeps retrying closed connections (component updates, sync, QUIC), so
every flag stays.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
)


def _binary(default: Path, *names: str) -> Path | None:
    if default.is_file():
        return default
    found = next((shutil.which(n) for n in names if shutil.which(n)), None)
    return Path(found) if found else None


class HeadlessBrowser:
    """The Selenium driver (``driver``) plus what page tests need."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, target: str | Path) -> None:
        """Load a URL, or a local file given as a Path; drops older console entries."""
        self.driver.get_log("browser")
        url = target.resolve().as_uri() if isinstance(target, Path) else target
        self.driver.get(url)

    def console_errors(self) -> list[dict[str, Any]]:
        """Console entries at level SEVERE since the last call (script errors, failed
        loads)."""
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def screenshot(self, path: Path, *, full_page: bool = False, max_height: int = 12000) -> Path:
        """Save a PNG of the viewport (or of the whole page, up to ``max_height`` px)."""
        width, height = 1280, 1600
        if full_page:
            height = min(
                int(self.driver.execute_script("return document.body.scrollHeight")), max_height
            )
        self.driver.set_window_size(width, max(height, 200))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1280, 1600)
        return path


@pytest.fixture(scope="session")
def browser() -> Iterator[HeadlessBrowser]:
    """A headless Chromium (Selenium) with a fresh profile folder and the console log on."""
    chromium = _binary(CHROMIUM, "chromium", "chromium-browser")
    driver_path = _binary(CHROMEDRIVER, "chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "headless Chromium not installed: run `make browser` "
            "(apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) missing")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="carbonedge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(driver_path)))
    driver.set_page_load_timeout(60)
    try:
        yield HeadlessBrowser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _ledger_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default emissions ledger of every test (and the processes it starts) lives in a
    temporary folder, never in the home folder."""
    import os

    saved = {k: os.environ.get(k) for k in ("CARBONEDGE_DATA_DIR", "CARBONEDGE_LEDGER")}
    os.environ["CARBONEDGE_DATA_DIR"] = str(tmp_path_factory.mktemp("carbonedge-data"))
    os.environ.pop("CARBONEDGE_LEDGER", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
