"""The course in a real browser: one ``rlgrad course`` server and one headless Chromium for the
whole session, and the helpers every chapter's test uses.

Chromium comes from Debian's ``chromium`` package (Playwright's own browser download needs the
internet). Without it these tests skip, unless ``RLGRAD_REQUIRE_BROWSER=1`` (``.ci/run`` sets it
after installing the package), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

marimo = pytest.importorskip("marimo")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOAD_SECONDS = 90  # a cold chapter imports torch and rlgrad in its kernel on a busy 2-core box
STALE_SECONDS = 10  # a page number this long unchanged and off: resend the sliders' values
SCREENSHOTS = os.environ.get("RLGRAD_COURSE_SCREENSHOTS")  # a folder: each chapter's test saves one


def chromium_path() -> str | None:
    return os.environ.get("RLGRAD_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="session")
def course_server(tmp_path_factory):
    """A running ``rlgrad course --port 0``: yields ``(address, log_path)``."""
    log = tmp_path_factory.mktemp("course") / "server.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "rlgrad.app.cli", "course", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )
    first = process.stdout.readline()
    match = re.search(r"(http://\S+/)", first)
    if match is None:
        process.kill()
        raise AssertionError(f"rlgrad course printed {first!r}; stderr: {log.read_text()}")
    address = match.group(1)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(address, timeout=5).read()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError(f"no answer at {address}; stderr: {log.read_text()}") from None
            time.sleep(0.3)
    yield address, log
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        message = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("RLGRAD_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " and RLGRAD_REQUIRE_BROWSER=1")
        pytest.skip(message)
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


class Chapter:
    """One chapter open in a browser tab, with what a test needs to read and drive it."""

    def __init__(self, page, log: Path, log_start: int, slug: str):
        self.page = page
        self.log = log
        self.log_start = log_start
        self.slug = slug
        self.pressed = []  # the sliders moved, for resend_sliders

    def number(self, element_id: str) -> float:
        """The number shown in the element ``#element_id`` (waits for it to appear)."""
        locator = self.page.locator(f"#{element_id}")
        locator.wait_for(timeout=LOAD_SECONDS * 1000)
        return float(locator.inner_text().strip().replace("−", "-"))

    def text(self, element_id: str) -> str:
        locator = self.page.locator(f"#{element_id}")
        locator.wait_for(timeout=LOAD_SECONDS * 1000)
        return locator.inner_text().strip()

    def wait_for_change(self, element_id: str, before: str, seconds: float = 30) -> str:
        """The text of ``#element_id`` once it differs from ``before`` (the kernel reran)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = self.text(element_id)
            if now != before:
                return now
            time.sleep(0.1)
        raise AssertionError(f"#{element_id} stayed {before!r} for {seconds} s")

    def settled(self, element_id: str, expected: float, tol: float = 5e-5, seconds: float = 90):
        """The number in ``#element_id`` once it is within ``tol`` of ``expected``, else the last
        number read, for the caller's assertion to report. Each arrow press reruns the page's
        cells, so the first change seen may belong to an intermediate slider value.

        marimo sends each slider value in its own HTTP request, and on a busy machine two of them
        can reach the kernel out of order: the slider shows the last value while the page was
        computed for the one before. A learner would nudge the slider; so does this, when the
        number has been off and unchanged for ``STALE_SECONDS``."""
        deadline = time.monotonic() + seconds
        last, changed = None, time.monotonic()
        while True:
            shown = self.number(element_id)
            now = time.monotonic()
            if abs(shown - expected) <= tol or now > deadline:
                return shown
            if shown != last:
                last, changed = shown, now
            elif now - changed > STALE_SECONDS:
                self.resend_sliders()
                changed = now
            time.sleep(0.1)

    def resend_sliders(self) -> None:
        """Moves every slider pressed so far one step away and back: the kernel gets each one's
        shown value again, last."""
        for slider in self.pressed:
            away, back = ("ArrowLeft", "ArrowRight")
            if self.slider_value(slider) <= float(slider.get_attribute("aria-valuemin")):
                away, back = back, away
            slider.focus()
            self.page.keyboard.press(away)
            self.page.keyboard.press(back)

    def slider(self, label: str):
        """The slider whose label contains ``label``."""
        # marimo keeps a widget's label in its custom element's data-label attribute, and the
        # slider itself in that element's (open) shadow root, which Playwright's CSS pierces
        wrapper = self.page.locator(f'marimo-slider[data-label*="{label}"]')
        return wrapper.locator("[role=slider]").first

    def slider_value(self, slider) -> float:
        return float(slider.get_attribute("aria-valuenow"))

    def press(self, slider, key: str, times: int = 1) -> None:
        if slider not in self.pressed:
            self.pressed.append(slider)
        slider.focus()
        for _ in range(times):
            self.page.keyboard.press(key)

    def type_answer(self, label: str, text: str) -> None:
        """Types ``text`` into the text field labelled ``label`` and presses Enter."""
        field = self.page.locator(f'marimo-text[data-label*="{label}"]').locator("input").first
        field.fill(text)
        field.press("Enter")

    def assert_no_errors(self) -> None:
        """No cell raised: the page shows no error and the server logged no traceback."""
        assert self.page.get_by_text("An internal error occurred").count() == 0
        assert self.page.locator(".marimo-error, [data-testid=marimo-error]").count() == 0
        logged = self.log.read_text()[self.log_start :]
        assert "Traceback" not in logged, logged

    def screenshot(self) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            # marimo scrolls inside its #App element, so full_page alone stops at the viewport:
            # make the viewport as tall as the notebook for the shot, then put it back
            size = self.page.viewport_size
            height = self.page.evaluate(
                "(() => { const app = document.querySelector('#App');"
                " if (!app) return 0; app.scrollTo(0, 0); return app.scrollHeight; })()"
            )
            self.page.set_viewport_size({"width": size["width"], "height": max(height, 900)})
            self.page.mouse.move(0, 0)  # no hover highlight where the last click was
            self.page.wait_for_timeout(1000)  # let plots and formulas lay out at the new size
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{self.slug}.png"), full_page=True)
            self.page.set_viewport_size(size)


@pytest.fixture
def open_chapter(course_server, browser):
    """``open_chapter(slug, ready_id)``: the chapter at ``/<slug>/`` once ``#ready_id`` shows."""
    address, log = course_server
    pages = []

    def open_(slug: str, ready_id: str) -> Chapter:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        pages.append(page)
        start = len(log.read_text())
        page.goto(f"{address}{slug}/" if slug else address)
        page.locator(f"#{ready_id}").wait_for(timeout=LOAD_SECONDS * 1000)
        return Chapter(page, log, start, slug or "home")

    yield open_
    for page in pages:
        page.close()
