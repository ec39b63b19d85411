"""Helpers for the browser tests: Debian's Chromium driven by Playwright (no browser download)."""

import os
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"

_ONE_AT_A_TIME = threading.Lock()


class OneRequestAtATime:
    """Test-only middleware for the live server on SQLite's in-memory test database, which Django
    shares as one connection between the server's request threads: a page and the request its script
    makes at once (the overview and its top spenders) must not use that connection together."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with _ONE_AT_A_TIME:
            return self.get_response(request)


#: Marks for a module of browser tests: skipped, with the reason, where Chromium is missing.
browser_test = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="Debian's chromium is not installed (make test installs it when run as root)",
    ),
]


def browser(test):
    """Mark one test in a module of other tests as a browser test (see browser_test)."""
    for mark in browser_test:
        test = mark(test)
    return test


def log_in(page, live_server, username="ops", password="browser-test-pw-1"):
    """Create a superuser and log in through the admin's login form."""
    from django.contrib.auth.models import User

    User.objects.create_superuser(username, f"{username}@example.com", password)
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


@contextmanager
def chromium_page(width=1440, height=900, timezone_id=None):
    """A page in a Chromium context of its own: its viewport and, when given, the time zone its clock reads."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls in the tests are safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            context = browser.new_context(viewport={"width": width, "height": height}, timezone_id=timezone_id)
            pg = context.new_page()
            pg.set_default_timeout(20_000)
            yield pg
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
