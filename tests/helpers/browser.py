"""Debian's Chromium under Playwright, as the browser tests drive it."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream"]
VIEWPORT = {"width": 1280, "height": 760}

needs_chromium = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                    reason="Debian chromium not installed")


@functools.cache
def screenshot_dir() -> Path:
    """Where the browser tests save their screenshots.

    A temporary folder, so a test run leaves tracked files alone; ``SCREENSHOTS_DIR``
    (set by ``./dev screenshots`` to docs/) saves them there instead.
    """
    chosen = os.environ.get("SCREENSHOTS_DIR")
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="broadcaster-screens-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.asynccontextmanager
async def chromium(profile: Path, *extra_args: str) -> AsyncIterator[Any]:
    """A persistent Chromium context (fake camera and microphone, autoplay allowed)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        ctx = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, viewport=VIEWPORT,
            args=[*ARGS, *extra_args],
        )
        try:
            yield ctx
        finally:
            await ctx.close()


async def open_page(browser: Any, url: str, problems: list[str], *,
                    console_errors: bool = True) -> Any:
    """``url`` in a new page; its uncaught errors (and, with ``console_errors``, console
    errors and CSP reports) are appended to ``problems``."""
    page = await browser.new_page()
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    if console_errors:
        page.on("console", lambda m: problems.append(f"console: {m.text}")
                if m.type == "error" or "Content Security Policy" in m.text else None)
    await page.goto(url)
    return page


async def join_page(browser: Any, url: str, name: str, problems: list[str], *,
                    ready: str = "body[data-state='live']") -> Any:
    """Open a viewer or presenter link, join as ``name``, wait for ``ready`` (the viewer
    live, or e.g. ``#floor[data-floor='yes']`` for a presenter); returns the page."""
    page = await open_page(browser, url, problems)
    await page.fill("#join-name", name)
    await page.click("#join-button")
    await page.wait_for_selector(ready, timeout=15000)
    return page


async def full_page_screenshot(page: Any, path: Path) -> None:
    """The whole page, scrolled to the top first: Chromium captures a full page at the
    current scroll position, so a sticky header would sit mid-page otherwise."""
    await page.evaluate("window.scrollTo(0, 0)")
    await page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
    await page.screenshot(path=str(path), full_page=True)
