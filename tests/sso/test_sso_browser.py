"""In a real headless Chromium: press "Sign in with Acme ID" on opsboard's login page, authorize on the
provider's own page, and land on the opsboard admin as the new user with the team the groups claim maps
to; and an expired ID token ending on the login page with the reason."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from pipelines.models import Team
from tests.browser import SHOTS, browser_test
from tests.sso.provider import expired

pytestmark = browser_test


def _authorize_at_provider(page, live_server, sub):
    page.goto(f"{live_server.url}/admin/login/")
    page.click("#sso-submit")
    page.wait_for_selector("input[name=sub]")  # the provider's own authorization page
    page.fill("input[name=sub]", sub)
    page.click("button[type=submit]:has-text('Authorize')")


@pytest.mark.django_db(transaction=True)
def test_it_signs_in_through_the_provider_as_a_new_team_member(page, live_server, sso):
    Team.objects.create(name="Payments", capabilities=["view"], all_pipelines=True)
    sso.set_user("carol", preferred_username="carol", email="carol@example.com", groups=["payments-devs"])
    _authorize_at_provider(page, live_server, "carol")
    page.wait_for_selector("#user-tools")
    assert page.url == f"{live_server.url}/admin/"
    assert "CAROL" in page.inner_text("#user-tools").upper()
    page.screenshot(path=str(SHOTS / "sso-signed-in.png"))
    user = User.objects.get(username="carol")
    assert list(user.opsboard_teams.values_list("name", flat=True)) == ["Payments"]


@pytest.mark.django_db(transaction=True)
def test_it_shows_why_an_expired_token_was_refused(page, live_server, sso):
    sso.set_user("dave", preferred_username="dave", email="dave@example.com")
    page.goto(f"{live_server.url}/admin/login/")
    page.screenshot(path=str(SHOTS / "sso-login.png"))
    sso.tamper = expired
    _authorize_at_provider(page, live_server, "dave")
    page.wait_for_selector(".messagelist .error")
    assert page.url.startswith(f"{live_server.url}/admin/login/")
    assert "Sign-in with Acme ID failed: the provider's ID token has expired" in page.inner_text(".messagelist")
    page.screenshot(path=str(SHOTS / "sso-refused.png"))
    assert not User.objects.filter(username="dave").exists()
