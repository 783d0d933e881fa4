"""A page opened in Debian's Chromium (/usr/bin/chromium, which `make test` installs) driven by Playwright from
PyPI, offline: every request that is not a file: URL is aborted and recorded. Never `playwright install`:
where the browser cannot start, the test is skipped with the reason (like the board tests)."""

import contextlib
import os
import tempfile

import pytest

CHROMIUM = os.environ.get("EDGEKIT_CHROMIUM", "/usr/bin/chromium")
# what this machine's closed network needs (no background connections), as root (no sandbox)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def offline_page(path, width=1300, height=900):
    """(page, {'requests': [...], 'errors': [...]}) with ``path`` loaded and its charts drawn."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as e:
        pytest.skip(f"playwright is not installed ({e}): make test installs it")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium, as root)")
    seen = {"requests": [], "errors": []}
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        try:
            context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS,
                                                           headless=True, viewport={"width": width, "height": height})
        except Error as e:
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(e).splitlines()[0][:200]}")
        try:
            def route(r):
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    seen["requests"].append(r.request.url)
                    r.abort()
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: m.type in ("error", "warning") and seen["errors"].append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: seen["errors"].append(f"page error: {e}"))
            page.on("requestfailed", lambda r: r.url.startswith("file:") and seen["errors"].append(f"failed: {r.url}"))
            page.goto(f"file://{os.path.abspath(path)}")
            page.evaluate("window.edgekitCharts")  # every chart drawn (vegaEmbed's promises)
            yield page, seen
        finally:
            context.close()


def marks(page, name):
    """How many marks the SVG group of the Vega-Lite unit named ``name`` holds (its class: NAME_marks)."""
    return page.evaluate("n => { const g = document.querySelector('div.chart svg g.' + n + '_marks');"
                         " return g ? g.children.length : -1; }", name)
