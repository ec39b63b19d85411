"""In a real headless Chromium: a login through the form is on the trail, and an entry's page shows its
facts, nested ones as compact JSON, with nothing to save or delete."""

import pytest

from pipelines.models import AuditAction, AuditEntry
from pipelines.ui import logins
from tests.browser import SHOTS, browser_test, log_in

pytestmark = browser_test


@pytest.fixture(autouse=True)
def audited_logins():
    logins.connect()


@pytest.mark.django_db(transaction=True)
def test_it_shows_the_login_and_an_entrys_facts(page, live_server):
    log_in(page, live_server)
    entry = AuditEntry.record(
        AuditAction.DLQ_PEEK, None, remote_addr="10.0.0.5", received=2, message_ids=["m-1", "m-2"]
    )
    page.goto(f"{live_server.url}/admin/pipelines/auditentry/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert "Logged in" in rows.nth(1).inner_text() and "method: password" in rows.nth(1).inner_text()
    page.screenshot(path=str(SHOTS / "audit-trail.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/pipelines/auditentry/{entry.pk}/change/")
    assert '["m-1","m-2"]' in page.locator(".field-facts_table").inner_text()
    assert page.locator("input[name=_save]").count() == 0 and page.locator(".deletelink").count() == 0
    page.screenshot(path=str(SHOTS / "audit-entry.png"), full_page=True)
