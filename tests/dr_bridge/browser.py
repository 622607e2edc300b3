"""Headless Chromium for tests: Debian's ``chromium`` driven by Playwright's Python API.

Playwright's own browser download is not used (``executable_path``); without
``/usr/bin/chromium`` (Debian: ``apt-get install -y chromium``) the tests that need it
skip and say so. ``offline`` routes every request that is not to loopback to an abort,
so a page that reaches for a CDN shows it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("GRIDCTL_CHROMIUM") or shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium (Debian: apt-get install -y chromium)"
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@asynccontextmanager
async def browser_page(*, offline: bool = True) -> AsyncIterator[tuple[object, list[str]]]:
    """``(page, refused)``: a fresh page and the non-loopback URLs it tried to load."""
    from playwright.async_api import async_playwright

    refused: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            if offline:

                async def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
                    host = urlsplit(route.request.url).hostname
                    if host in ("127.0.0.1", "localhost", "::1"):
                        await route.continue_()
                    else:
                        refused.append(route.request.url)
                        await route.abort()

                await page.route("**/*", only_loopback)
            yield page, refused
        finally:
            await browser.close()
