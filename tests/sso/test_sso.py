"""Single sign-on against a real OpenID Connect provider on 127.0.0.1, driven with Django's test client
and plain HTTP to the provider (the browser test walks the same path in Chromium).

Refused ID tokens come from the provider's token endpoint through a proxy that rewrites them: signed with
the provider's own key but for another audience, issuer, time or nonce, or signed with a foreign key.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import requests
from axes.models import AccessAttempt
from django.contrib.auth.models import Group, User

from pipelines.models import AuditAction, AuditEntry, Team
from pipelines.ui import logins
from tests.sso.conftest import CLIENT_ID
from tests.sso.provider import expired, foreign_key

pytestmark = pytest.mark.django_db


def sign_in(client, idp, sub="alice", follow=False):
    """Start at opsboard, authorize at the provider as `sub`, and bring the answer back to opsboard."""
    start = client.post("/oidc/authenticate/")
    assert start.status_code == 302, start.content[:300]
    authorize = requests.post(start["Location"], data={"sub": sub}, allow_redirects=False, timeout=10)
    assert authorize.status_code == 302, authorize.text[:500]
    back = urlsplit(authorize.headers["Location"])
    return client.get(f"{back.path}?{back.query}", follow=follow)


def alice(idp, **claims):
    defaults = {"preferred_username": "alice", "email": "alice@example.com", "given_name": "Alice"}
    idp.set_user("alice", **{**defaults, "family_name": "Liddell", **claims})


def failures():
    return list(AuditEntry.objects.filter(action=AuditAction.LOGIN_FAILED).values_list("detail", flat=True))


def test_it_creates_the_user_and_joins_mapped_teams(client, sso):
    logins.connect()  # the suite turns the login receiver off; this test is about the login it writes
    Team.objects.create(name="Payments", capabilities=["view"], all_pipelines=True)
    Team.objects.create(name="Platform", capabilities=["view"])
    alice(sso, groups=["payments-devs", "unmapped"])
    response = sign_in(client, sso)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    user = User.objects.get(username="alice")
    assert (user.email, user.first_name, user.last_name, user.is_staff) == (
        "alice@example.com",
        "Alice",
        "Liddell",
        True,
    )
    assert not user.has_usable_password()
    assert list(user.opsboard_teams.values_list("name", flat=True)) == ["Payments"]
    assert client.get("/admin/").status_code == 200
    login = AuditEntry.objects.get(action=AuditAction.LOGIN)
    assert login.username == "alice" and login.detail.get("method") == "oidc"


def test_it_updates_the_user_and_moves_teams_on_every_login(client, sso):
    payments, platform = Team.objects.create(name="Payments"), Team.objects.create(name="Platform")
    by_hand = Team.objects.create(name="Hand-made")
    alice(sso, groups=["payments-devs"])
    sign_in(client, sso)
    user = User.objects.get(username="alice")
    by_hand.members.add(user)
    client.logout()
    alice(sso, email="alice@new.example.com", groups=["platform", "sre"])
    sign_in(client, sso)
    user.refresh_from_db()
    assert user.email == "alice@new.example.com"
    assert set(user.opsboard_teams.all()) == {platform, by_hand}  # left Payments; the unmapped team untouched
    assert payments.members.count() == 0
    assert user.groups.filter(name="operator").exists()  # OIDC_OPERATOR_GROUPS=sre
    assert User.objects.filter(username="alice").count() == 1


def test_it_lets_a_user_without_mapped_groups_in_with_nothing_to_see(client, sso):
    sso.set_user("bob", preferred_username="bob", email="bob@example.com", groups=["unmapped"])
    assert sign_in(client, sso, sub="bob")["Location"] == "/admin/"
    user = User.objects.get(username="bob")
    assert not user.opsboard_teams.exists() and not user.get_all_permissions()
    apps = client.get("/admin/apps/")
    models = {m["object_name"] for app in apps.context["app_list"] for m in app["models"]}
    assert apps.status_code == 200 and not models & {"Pipeline", "Incident", "AlertRule", "Team", "User"}


def test_it_revokes_superuser_when_the_group_is_gone(client, sso, settings):
    settings.OIDC_SUPERUSER_GROUPS = ("admins",)
    alice(sso, groups=["admins"])
    sign_in(client, sso)
    assert User.objects.get(username="alice").is_superuser
    client.logout()
    alice(sso, groups=[])
    sign_in(client, sso)
    assert not User.objects.get(username="alice").is_superuser


def test_it_never_signs_in_as_an_existing_account_that_only_shares_the_name(client, sso, settings):
    local = User.objects.create_superuser("alice", "root@example.com", "right-password-1")
    alice(sso)  # the provider's "alice" may be anybody the provider lets choose that name
    page = sign_in(client, sso, follow=True)
    assert page.request["PATH_INFO"] == "/admin/login/" and "_auth_user_id" not in client.session
    assert "already exists and is not linked" in str(list(page.context["messages"])[0])
    assert failures()[0]["reason"] == "account_exists"
    local.refresh_from_db()
    assert local.is_superuser and local.email == "root@example.com"
    # linking by name, when allowed, still never links a superuser
    settings.OIDC_LINK_EXISTING_USERS = True
    assert sign_in(client, sso, follow=True).request["PATH_INFO"] == "/admin/login/"
    local.is_superuser = False
    local.save()
    assert sign_in(client, sso)["Location"] == "/admin/"
    assert User.objects.get(username="alice").sso_identity.subject == "alice"


def test_it_finds_the_user_by_the_providers_subject_not_its_name(client, sso):
    alice(sso)
    sign_in(client, sso)
    user = User.objects.get(username="alice")
    client.logout()
    alice(sso, preferred_username="alice.liddell")  # renamed at the provider: still the same account
    sign_in(client, sso)
    assert client.session["_auth_user_id"] == str(user.pk) and User.objects.count() == 1
    client.logout()
    sso.set_user("mallory", preferred_username="alice", email="mallory@example.com")  # another account, her name
    page = sign_in(client, sso, sub="mallory", follow=True)
    assert "_auth_user_id" not in client.session and failures()[-1]["reason"] == "account_exists"
    assert page.request["PATH_INFO"] == "/admin/login/"


def test_it_audits_what_single_sign_on_changes_about_a_user(client, sso, settings):
    settings.OIDC_SUPERUSER_GROUPS = ("admins",)
    Team.objects.create(name="Payments")
    alice(sso, groups=["payments-devs"])
    sign_in(client, sso)
    added = AuditEntry.objects.get(action=AuditAction.OBJECT_ADD, detail__model="auth.user")
    assert added.detail["after"] == {"superuser": False, "operator": False, "teams": ["Payments"]}
    assert added.through == "system" and added.detail["method"] == "oidc"
    client.logout()
    sign_in(client, sso)  # nothing changed: nothing written
    assert not AuditEntry.objects.filter(action=AuditAction.OBJECT_CHANGE).exists()
    client.logout()
    alice(sso, groups=["admins"])
    sign_in(client, sso)
    changed = AuditEntry.objects.get(action=AuditAction.OBJECT_CHANGE, detail__model="auth.user")
    assert changed.detail["before"]["superuser"] is False and changed.detail["after"] == {
        "superuser": True,
        "operator": False,
        "teams": [],
    }


def _other_audience(claims):
    return {**claims, "aud": "another-app"}, None


def _other_issuer(claims):
    return {**claims, "iss": "https://evil.example"}, None


def _foreign_signature(claims):
    return claims, foreign_key()


def _other_nonce(claims):
    return {**claims, "nonce": "not-the-one-this-browser-got"}, None


def _shared_audience(claims):
    return {**claims, "aud": [CLIENT_ID, "another-app"]}, None


@pytest.mark.parametrize(
    ("tamper", "reason", "words"),
    [
        (_foreign_signature, "bad_signature", "signature does not verify"),
        (_other_audience, "wrong_audience", "issued to another client"),
        (expired, "expired", "has expired"),
        (_other_issuer, "wrong_issuer", "another issuer"),
        (_other_nonce, "nonce_mismatch", "nonce mismatch"),
        (_shared_audience, "wrong_audience", "azp"),
    ],
)
def test_it_refuses_an_id_token_that_does_not_verify(client, sso, tamper, reason, words):
    alice(sso, groups=["payments-devs"])
    sso.tamper = tamper
    page = sign_in(client, sso, follow=True)
    assert page.request["PATH_INFO"] == "/admin/login/" and page.status_code == 200
    shown = [str(m) for m in page.context["messages"]]
    assert len(shown) == 1 and "Sign-in with Acme ID failed" in shown[0] and words in shown[0]
    assert not User.objects.filter(username="alice").exists()
    assert "_auth_user_id" not in client.session
    assert failures() == [{"method": "oidc", "reason": reason, "message": shown[0].split("failed: ", 1)[1]}]
    assert not AccessAttempt.objects.exists()  # not counted as a wrong password


def test_it_accepts_a_token_within_the_leeway_and_several_audiences_with_azp(client, sso, settings):
    settings.OIDC_LEEWAY_SECONDS = 60
    now = int(time.time())
    sso.tamper = lambda c: ({**c, "exp": now - 20, "aud": [CLIENT_ID, "api"], "azp": CLIENT_ID}, None)
    alice(sso)
    assert sign_in(client, sso)["Location"] == "/admin/"


def test_it_refuses_an_answer_for_a_sign_in_this_browser_did_not_start(client, sso):
    page = client.get("/oidc/callback/?code=abc&state=forged", follow=True)
    assert page.request["PATH_INFO"] == "/admin/login/"
    assert "does not belong to a sign-in this browser started" in str(list(page.context["messages"])[0])
    # anybody can send such an answer: logged, but it does not write the audit trail
    client.get("/oidc/callback/?error=access_denied")
    assert failures() == []
    # one to a browser that did start a sign-in is audited
    client.post("/oidc/authenticate/")
    client.get("/oidc/callback/?code=abc&state=forged")
    assert [f["reason"] for f in failures()] == ["state_mismatch"]


def test_it_reports_a_denial_at_the_provider(client, sso):
    start = client.post("/oidc/authenticate/")
    denied = requests.post(start["Location"], data={"action": "deny"}, allow_redirects=False, timeout=10)
    back = urlsplit(denied.headers["Location"])
    page = client.get(f"{back.path}?{back.query}", follow=True)
    assert "the provider answered access_denied" in str(list(page.context["messages"])[0])
    assert failures()[0]["reason"] == "provider_error"


def test_it_reports_an_unreachable_provider(client, sso, settings):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"
    page = client.post("/oidc/authenticate/", follow=True)
    assert page.request["PATH_INFO"] == "/admin/login/"
    assert "could not be reached" in str(list(page.context["messages"])[0])
    assert failures()[0]["reason"] == "provider_unreachable"


def test_it_applies_the_outbound_address_policy_to_the_provider(client, sso, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ()
    page = client.post("/oidc/authenticate/", follow=True)
    assert "outbound address policy" in str(list(page.context["messages"])[0])
    assert failures()[0]["reason"] == "provider_unreachable"


def test_it_signs_in_from_an_address_locked_out_for_passwords(client, sso, settings):
    User.objects.create_user("mallory", password="right-password-1")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "mallory", "password": "wrong"})
    assert client.post("/admin/login/", {"username": "mallory", "password": "wrong"}).status_code == 429
    alice(sso)
    assert sign_in(client, sso)["Location"] == "/admin/"


def test_it_shows_the_button_and_the_password_form(client, sso):
    page = client.get("/admin/login/").content.decode()
    assert "Sign in with Acme ID" in page and 'name="password"' in page


def test_it_refuses_passwords_when_local_passwords_are_off(client, sso, settings):
    settings.LOCAL_PASSWORDS = False
    User.objects.create_superuser("root", "root@example.com", "right-password-1")
    page = client.get("/admin/login/").content.decode()
    assert "Sign in with Acme ID" in page and 'name="password"' not in page
    refused = client.post("/admin/login/", {"username": "root", "password": "right-password-1"})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    assert "Password login is turned off" in refused.content.decode()


def test_it_has_no_sign_in_button_or_pages_without_configuration(client, settings):
    settings.OIDC_ENABLED = False
    assert "Sign in with" not in client.get("/admin/login/").content.decode()
    assert client.post("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=a&state=b").status_code == 404


def test_it_keeps_the_operator_group_alone_without_operator_groups(client, sso, settings):
    settings.OIDC_OPERATOR_GROUPS = ()
    alice(sso, groups=[])
    sign_in(client, sso)
    user = User.objects.get(username="alice")
    user.groups.add(Group.objects.get(name="operator"))
    client.logout()
    sign_in(client, sso)
    assert user.groups.filter(name="operator").exists()
