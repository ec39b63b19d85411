"""API tokens in the admin: made for oneself (or, by a user-admin, for another user), shown once,
listed with their state and last use, revoked by an action; both acts audited."""

import re
from datetime import timedelta

from django.contrib.auth.models import Permission
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from pipelines import clock
from pipelines.models import ApiToken, AuditAction, AuditEntry
from tests.api.conftest import make_user

ADD = reverse("admin:pipelines_apitoken_add")
LIST = reverse("admin:pipelines_apitoken_changelist")


def day(days: int) -> str:
    return (clock.now().date() + timedelta(days=days)).isoformat()


def test_it_shows_the_new_token_once_and_it_works(client, db):
    ann = make_user("ann", is_superuser=True)
    client.force_login(ann)
    page = client.post(ADD, {"name": "ci", "scopes": ["view"], "expires_on": day(30), "user": ann.pk})
    raw = re.search(r'value="(obt_[^"]+)"', page.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert token.key_hash != raw and raw not in client.get(LIST).content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/pipelines/").status_code == 200
    entry = AuditEntry.objects.get(action=AuditAction.API_TOKEN_CREATE)
    assert entry.detail["scopes"] == ["view"] and raw not in str(entry.detail)


def test_it_makes_a_staff_users_token_their_own(client, db):
    bob, eve = make_user("bob"), make_user("eve")
    client.force_login(bob)
    assert 'name="user"' not in client.get(ADD).content.decode()
    client.post(ADD, {"name": "mine", "scopes": ["view"], "expires_on": day(10), "user": eve.pk})
    assert ApiToken.objects.get().user == bob


def test_it_lets_a_user_admin_make_a_token_for_another_user(client, db):
    root, eve = make_user("root", is_superuser=True), make_user("eve")
    client.force_login(root)
    client.post(ADD, {"name": "for-eve", "scopes": ["view", "peek"], "expires_on": day(10), "user": eve.pk})
    assert ApiToken.objects.get().user == eve


def test_a_user_admin_who_is_no_superuser_cannot_make_a_superusers_token(client, db):
    helper, root = make_user("helen"), make_user("root", is_superuser=True)
    helper.user_permissions.add(Permission.objects.get(codename="change_user"))
    client.force_login(helper)
    page = client.post(ADD, {"name": "as-root", "scopes": ["view"], "expires_on": day(10), "user": root.pk})
    assert "Only a superuser may make a token that acts as a superuser." in page.content.decode()
    assert not ApiToken.objects.exists()


@override_settings(API_TOKEN_MAX_DAYS=30)
def test_it_refuses_an_expiry_beyond_the_maximum(client, db):
    client.force_login(make_user("bob"))
    page = client.post(ADD, {"name": "long", "scopes": ["view"], "expires_on": day(31)}).content.decode()
    assert "At most 30 days ahead" in page
    assert not ApiToken.objects.exists()


def test_it_lists_only_ones_own_tokens_and_revokes_them(client, db):
    bob, eve = make_user("bob"), make_user("eve")
    mine, _ = ApiToken.issue(bob, "mine", ["view"])
    ApiToken.issue(eve, "hers", ["view"])
    client.force_login(bob)
    page = client.get(LIST).content.decode()
    assert "mine" in page and "hers" not in page
    client.post(LIST, {"action": "revoke", "_selected_action": [mine.pk]})
    mine.refresh_from_db()
    assert mine.revoked_at is not None
    assert "revoked" in client.get(LIST).content.decode()
    assert AuditEntry.objects.filter(action=AuditAction.API_TOKEN_REVOKE, user=bob).count() == 1
