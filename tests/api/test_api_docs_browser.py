"""The API docs page in a real browser: Swagger UI draws the schema from opsboard's own files under the
Content-Security-Policy (no inline script, no CDN)."""

from tests.browser import SHOTS, browser_test, log_in

pytestmark = browser_test


def test_it_draws_the_api_docs_for_a_signed_in_user(page, live_server):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector("text=/api/v1/pipelines/")
    assert page.locator(".opblock").count() >= 17
    page.screenshot(path=str(SHOTS / "api_docs.png"))
    assert not [e for e in errors if "Content Security Policy" in e]
