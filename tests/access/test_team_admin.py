"""The Team admin: capabilities as checkboxes, owned groups and tags typed as on a pipeline, edited by
the global role only."""

from datetime import timedelta

import pytest
from django.urls import reverse

from pipelines import clock
from pipelines.models import AlertRule, AuditAction, AuditEntry, Silence, Team
from tests.access.roles import OPERATOR, SUPERUSER, TEAM_FULL, TEAM_VIEWER, client_for, make_world, user_for

pytestmark = pytest.mark.django_db


def test_it_saves_a_team_from_ticked_capabilities_and_typed_groups_and_tags():
    world = make_world()
    client = client_for(SUPERUSER, world)
    form = {
        "name": "payments",
        "description": "",
        "members": [user_for(OPERATOR, world).pk],
        "capabilities": ["peek", "view"],
        "pipelines": [world.a.pk],
        "pipeline_groups": "payments, search,payments",
        "pipeline_tags": "team = money, tier",
    }
    response = client.post(reverse("admin:pipelines_team_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    team = Team.objects.get(name="payments")
    assert team.capabilities == ["view", "peek"]
    assert team.pipeline_groups == ["payments", "search"] and team.pipeline_tags == ["team=money", "tier"]
    listed = client.get(reverse("admin:pipelines_team_changelist")).content.decode()
    assert "1 pipeline(s), group payments, group search, tag team=money, tag tier" in listed


def test_it_says_why_an_owned_tag_cannot_be_read():
    world = make_world()
    form = {"name": "bad", "capabilities": ["view"], "pipeline_groups": "", "pipeline_tags": "=oops"}
    page = client_for(SUPERUSER, world).post(reverse("admin:pipelines_team_add"), form).content.decode()
    assert "is not a tag" in page and not Team.objects.filter(name="bad").exists()


def _rule_override_form(name: str, threshold: str) -> dict:
    return {
        "name": name,  # a pipeline field: read-only for a team that only manages rules
        "alert_rules-TOTAL_FORMS": "1",
        "alert_rules-INITIAL_FORMS": "0",
        "alert_rules-MIN_NUM_FORMS": "0",
        "alert_rules-MAX_NUM_FORMS": "1000",
        "alert_rules-0-kind": "backlog",
        "alert_rules-0-enabled": "on",
        "alert_rules-0-threshold": threshold,
        "alert_rules-0-minutes": "",
    }


def test_a_team_that_manages_rules_saves_rule_overrides_but_not_the_pipelines_own_fields():
    world = make_world()
    client = client_for(TEAM_FULL, world)  # every capability on A, none of them "change pipeline"
    url = reverse("admin:pipelines_pipeline_change", args=[world.a.pk])
    page = client.get(url).content.decode()
    assert 'name="alert_rules-TOTAL_FORMS"' in page and 'name="name"' not in page  # the rules are a form, the rest text
    response = client.post(url, _rule_override_form("renamed", "250"))
    assert response.status_code == 302, response.content.decode()[:3000]
    world.a.refresh_from_db()
    assert world.a.name == "alpha"
    assert list(AlertRule.objects.filter(pipeline=world.a).values_list("kind", "threshold")) == [("backlog", 250)]
    change = AuditEntry.objects.filter(action=AuditAction.OBJECT_CHANGE).latest("pk")
    assert change.detail.get("related") == ["added alert rule"] and "fields" not in change.detail
    # another team's pipeline is not theirs to change
    other = reverse("admin:pipelines_pipeline_change", args=[world.b.pk])
    client.post(other, _rule_override_form("bravo", "1"))
    assert not AlertRule.objects.filter(pipeline=world.b).exists()


def test_a_viewer_team_cannot_save_a_pipelines_page():
    world = make_world()
    url = reverse("admin:pipelines_pipeline_change", args=[world.a.pk])
    assert client_for(TEAM_VIEWER, world).post(url, _rule_override_form("alpha", "5")).status_code == 403
    assert not AlertRule.objects.exists()


def test_expiring_silences_changes_only_those_the_user_may_change():
    world = make_world()
    user = user_for(TEAM_FULL, world)  # every capability on A
    Team.objects.create(name="watchers of B", capabilities=["view"]).members.add(user)
    Team.objects.get(name="watchers of B").pipelines.add(world.b)
    at = clock.now()
    mine = Silence.objects.create(pipeline=world.a, ends_at=at + timedelta(hours=1), reason="deploy")
    theirs = Silence.objects.create(pipeline=world.b, ends_at=at + timedelta(hours=1), reason="theirs")
    client = client_for(TEAM_FULL, world)
    response = client.post(
        reverse("admin:pipelines_silence_changelist"),
        {"action": "expire_now", "_selected_action": [mine.pk, theirs.pk]},
        follow=True,
    )
    assert "1 silence(s) are not yours to change" in response.content.decode()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.ends_at <= clock.now() < theirs.ends_at
    [entry] = AuditEntry.objects.filter(action=AuditAction.OBJECT_CHANGE, detail__model="pipelines.silence")
    assert entry.detail["object_id"] == str(mine.pk) and entry.detail["fields"] == ["Ends at"]
