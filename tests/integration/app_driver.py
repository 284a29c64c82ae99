"""Drives the FiftyOne App in headless Chromium with Playwright, as a user.

Debian's ``chromium`` (``/usr/bin/chromium``) is the browser: Playwright's
own browser download cannot reach its host from our machines. The flags
keep Chromium off the network it cannot reach anyway.
"""

import contextlib
import os
import socket
import time

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}


def _needs_browser():
    import pytest

    from jina_embeddings_v4.testing.support import system_deps_required

    # in CI (JINA_V4_CI=1) a missing browser fails the tests instead
    return pytest.mark.skipif(
        not browser_available() and not system_deps_required(),
        reason="needs Debian's chromium at %s (make test installs it as "
        "root)" % CHROMIUM,
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_available():
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


@contextlib.contextmanager
def app_for(dataset):
    """The App serving ``dataset`` on a free local port, in a Playwright
    page: yields ``(session, page)``; closes both at the end."""
    import fiftyone as fo

    port = free_port()
    session = fo.launch_app(
        dataset, remote=True, address="127.0.0.1", port=port, auto=False
    )
    try:
        with app_page(session, port) as page:
            yield session, page
    finally:
        session.close()


@contextlib.contextmanager
def app_page(session, port):
    """A Playwright page showing ``session``'s App."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto("http://127.0.0.1:%d/" % port, timeout=120000)
            page.wait_for_selector(
                '[data-cy="action-sort-by-similarity"]', timeout=120000
            )
            yield page
        finally:
            browser.close()


def dismiss_popovers(page, tries=5):
    """Closes popovers the App may open on start (they catch clicks)."""
    for _ in range(tries):
        backdrop = page.query_selector(".MuiPopover-root .MuiBackdrop-root")
        if backdrop is None:
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)


def sort_by_text_similarity(page, text, timeout=300):
    """The user's steps for "Sort by text similarity": the toolbar button,
    the query box, Enter, then "Show results" in the Similarity Search
    panel (a mouse click at its centre: a draggable wrapper marks it
    aria-disabled, so Playwright's click() refuses it)."""
    dismiss_popovers(page)
    page.click('[data-cy="action-sort-by-similarity"]')
    box = page.wait_for_selector(
        'input[placeholder="Type anything!"]', timeout=60000
    )
    box.fill(text)
    box.press("Enter")
    button = page.wait_for_selector(
        '[aria-label="Show results"]', timeout=timeout * 1000
    )
    deadline = time.monotonic() + timeout
    while True:
        box = button.bounding_box()
        if box is not None:
            page.mouse.click(
                box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            )
            return
        if time.monotonic() > deadline:
            raise TimeoutError("'Show results' never became visible")
        time.sleep(0.5)


def grid_box(page):
    """The sample grid's bounding box on the page."""
    element = page.wait_for_selector('[data-cy="fo-grid"]', timeout=60000)
    return element.bounding_box()


def pixels(page, box):
    """The RGB pixels of ``box`` on the page, as a numpy array."""
    import io

    import numpy as np
    from PIL import Image

    png = page.screenshot(clip=box)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def stable_pixels(page, box, timeout=60):
    """The pixels of ``box`` once two captures a second apart agree (the
    grid draws its tiles a few at a time)."""
    import numpy as np

    last = pixels(page, box)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(1000)
        now = pixels(page, box)
        if np.array_equal(now, last):
            return now
        last = now

    raise TimeoutError("The grid kept changing for %d s" % timeout)


def show_field(page, field):
    """Ticks a label field's checkbox in the sidebar, so the grid draws
    it."""
    page.click('[data-cy="checkbox-%s"]' % field, timeout=60000)


def wait_for_view_ids(session, timeout=120):
    """The ids of ``session.view`` once the App has set an ordered view."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = session.view
        if view is not None and len(view._stages) > 0:
            return view.values("id")
        time.sleep(0.5)

    raise TimeoutError("The App never set a view on the session")


needs_browser = _needs_browser()
