"""Teams own pipelines (one by one, by group, by tag, or all) and grant their members capabilities
on those only; the global role (a user's or group's own permissions) holds everywhere; an API token
narrows its user to its scopes."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User

from pipelines import access, clock
from pipelines.models import ApiToken, AwsAccount, Capability, Incident, Pipeline, Team

pytestmark = pytest.mark.django_db


def _pipeline(account, name, group="", tags=None):
    return Pipeline.objects.create(
        account=account,
        name=name,
        queue_url=f"https://sqs.eu-west-1.amazonaws.com/123456789012/{name}",
        group=group,
        tags=tags or {},
    )


@pytest.fixture
def fleet():
    account = AwsAccount.objects.create(name="prod", region="eu-west-1")
    return {
        "orders": _pipeline(account, "orders", group="payments"),
        "refunds": _pipeline(account, "refunds", tags={"team": "money", "tier": "1"}),
        "search": _pipeline(account, "search", group="search"),
        "mail": _pipeline(account, "mail"),
    }


def _member(name, **team):
    user = User.objects.create_user(name, is_staff=True)
    t = Team.objects.create(name=f"team-{name}", **team)
    t.members.add(user)
    return user, t


def _names(qs):
    return sorted(qs.values_list("name", flat=True))


def test_it_grants_a_teams_capabilities_on_the_pipelines_it_owns_only(fleet):
    user, team = _member("pat", capabilities=[Capability.VIEW, Capability.PEEK], pipeline_groups=["payments"])
    team.pipelines.add(fleet["mail"])
    assert user.has_perm(access.VIEW, fleet["orders"]) and user.has_perm(access.PEEK, fleet["mail"])
    assert not user.has_perm(access.VIEW, fleet["search"])
    assert not user.has_perm(access.REDRIVE, fleet["orders"])  # not granted
    assert user.has_perm(access.VIEW) and not user.has_perm(access.REDRIVE)  # "on at least one"
    assert _names(access.visible(user, Pipeline.objects.all())) == ["mail", "orders"]


def test_it_owns_by_tag_with_or_without_a_value(fleet):
    user, _ = _member("tia", capabilities=[Capability.VIEW], pipeline_tags=["team=money"])
    assert _names(access.visible(user, Pipeline.objects.all())) == ["refunds"]
    other, _ = _member("kim", capabilities=[Capability.VIEW], pipeline_tags=["tier", "team=nobody"])
    assert _names(access.visible(other, Pipeline.objects.all())) == ["refunds"]
    assert other.has_perm(access.VIEW, fleet["refunds"]) and not other.has_perm(access.VIEW, fleet["mail"])


def test_it_narrows_rows_of_other_models_through_their_pipeline(fleet):
    user, team = _member("ali", capabilities=[Capability.VIEW])
    team.pipelines.add(fleet["search"])
    for p in fleet.values():
        Incident.objects.create(pipeline=p, rule="backlog", severity="warning", summary=p.name)
    seen = access.visible(user, Incident.objects.all(), prefix="pipeline__")
    assert sorted(seen.values_list("summary", flat=True)) == ["search"]
    assert user.has_perm(access.VIEW, seen.get())


def test_it_lets_the_global_role_and_an_operators_team_see_everything(fleet):
    operator = User.objects.create_user("op", is_staff=True)
    operator.groups.add(Group.objects.get(name="operator"))
    assert operator.has_perm(access.BODIES, fleet["mail"])
    assert access.owned_q(operator, access.REDRIVE) is None
    assert _names(access.visible(operator, Pipeline.objects.all())) == sorted(fleet)
    ops, _ = _member("night", capabilities=[Capability.VIEW], all_pipelines=True)
    assert _names(access.visible(ops, Pipeline.objects.all())) == sorted(fleet)
    assert not ops.has_perm(access.BODIES, fleet["mail"])


def test_it_refuses_everything_to_an_inactive_member(fleet):
    user, _ = _member("gone", capabilities=list(Capability.values), all_pipelines=True)
    user.is_active = False
    user.save()
    assert not user.has_perm(access.VIEW, fleet["orders"])
    assert not access.visible(user, Pipeline.objects.all()).exists()


def test_it_narrows_a_user_to_the_tokens_scopes_and_keeps_only_a_hash(fleet):
    user, _ = _member("bot", capabilities=[Capability.VIEW, Capability.REDRIVE], all_pipelines=True)
    token, raw = ApiToken.issue(user, "ci", [Capability.VIEW])
    assert raw not in token.key_hash and ApiToken.find(raw) == token
    assert ApiToken.find(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None

    class Request:
        pass

    request = Request()
    request.user, request.auth = user, token
    assert access.can(request, access.VIEW, fleet["orders"])
    assert not access.can(request, access.REDRIVE, fleet["orders"])  # the user may, the token may not
    assert not access.visible(request, Pipeline.objects.all(), perm=access.REDRIVE).exists()
    token.expires_at = clock.now() - timedelta(seconds=1)
    token.save()
    assert ApiToken.find(raw) is None
    token.expires_at = clock.now() + timedelta(days=1)
    token.save()
    assert token.revoke() and not token.revoke() and ApiToken.find(raw) is None


def test_it_gives_delete_to_everyone_who_could_redrive_when_migrating():
    """The data migration's grant, read back through the permission it created."""
    from django.contrib.auth.models import Permission

    assert Permission.objects.filter(codename="delete_dlq_messages", content_type__app_label="pipelines").exists()
    operator = Group.objects.get(name="operator")
    assert operator.permissions.filter(codename="delete_dlq_messages").exists()
