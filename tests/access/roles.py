"""The roles the permission tests log in as, and the small world they act on: two pipelines, A and B,
with a row of every kind that belongs to a pipeline (an incident, a DLQ task, a triage scan, a trace
lookup, an audit entry) on A.

Roles (string constants): anonymous, staff with no permission, a team that may only view A, a team
with every capability on A, a team with every capability on B, the global "operator" group, and a
superuser. `client_for(role, world)` returns a logged-in django test Client (anonymous: not logged in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.test import Client

from pipelines import clock
from pipelines.models import (
    AuditAction,
    AuditEntry,
    AwsAccount,
    Capability,
    DlqOperation,
    Incident,
    Pipeline,
    RedriveStatus,
    RedriveTask,
    Team,
    TraceLookup,
    TraceVerdict,
    TriageScan,
    TriageStatus,
)

ANONYMOUS = "anonymous"
STAFF = "staff-no-perms"
TEAM_VIEWER = "team-viewer"
TEAM_FULL = "team-full"
OTHER_TEAM = "other-team"
OPERATOR = "operator"
SUPERUSER = "superuser"
ROLES = (ANONYMOUS, STAFF, TEAM_VIEWER, TEAM_FULL, OTHER_TEAM, OPERATOR, SUPERUSER)
PASSWORD = "pw-for-tests-1"


@dataclass
class World:
    """Pipelines A and B (`a, b = make_world()` works too) and the rows of A."""

    a: Pipeline
    b: Pipeline
    incident: Incident
    task: RedriveTask
    scan: TriageScan
    lookup: TraceLookup
    audit: AuditEntry

    def __iter__(self):
        return iter((self.a, self.b))


def _pipeline(account: AwsAccount, name: str, group: str) -> Pipeline:
    base = account.endpoint_url.rstrip("/") if account.endpoint_url else "https://sqs.us-east-1.amazonaws.com"
    return Pipeline.objects.create(
        account=account,
        name=name,
        group=group,
        queue_url=f"{base}/123456789012/{name}",
        queue_name=name,
        dlq_url=f"{base}/123456789012/{name}-dlq",
        dlq_arn=f"arn:aws:sqs:us-east-1:123456789012:{name}-dlq",
    )


def make_world(account: AwsAccount | None = None) -> World:
    """Pipelines A ("alpha", group "a-team") and B ("bravo", group "b-team") on `account` (a new one
    without AWS behind it when None: then only pages that call no AWS may be opened), and A's rows."""
    if account is None:
        account = AwsAccount.objects.create(name="matrix", region="us-east-1")
    a, b = _pipeline(account, "alpha", "a-team"), _pipeline(account, "bravo", "b-team")
    at = clock.now()
    incident = Incident.objects.create(pipeline=a, rule="backlog", severity="warning", summary="alpha backs up")
    Incident.objects.create(pipeline=b, rule="backlog", severity="critical", summary="bravo backs up")
    task = RedriveTask.objects.create(
        pipeline=a,
        pipeline_name=a.name,
        operation=DlqOperation.REDRIVE,
        source_url=a.dlq_url,
        status=RedriveStatus.COMPLETED,
        finished_at=at,
    )
    scan = TriageScan.objects.create(pipeline=a, status=TriageStatus.COMPLETED, cap=100, finished_at=at)
    lookup = TraceLookup.objects.create(
        ident="req-1",
        pipeline=a,
        pipeline_name=a.name,
        window_start=at - timedelta(hours=1),
        window_end=at,
        verdict=TraceVerdict.PROCESSED,
    )
    audit = AuditEntry.record(AuditAction.DLQ_PEEK, None, a, queue_url=a.dlq_url)
    return World(a, b, incident, task, scan, lookup, audit)


def _team(name: str, caps: list[str], pipeline: Pipeline) -> Team:
    team = Team.objects.create(name=name, capabilities=caps)
    team.pipelines.add(pipeline)
    return team


def user_for(role: str, world: World) -> User | None:
    """The user of a role (created on first use; None for anonymous)."""
    if role == ANONYMOUS:
        return None
    found = User.objects.filter(username=role).first()
    if found is not None:
        return found
    user = User.objects.create_user(role, f"{role}@example.com", PASSWORD, is_staff=True)
    if role == SUPERUSER:
        user.is_superuser = True
        user.save()
    elif role == OPERATOR:
        user.groups.add(Group.objects.get(name="operator"))
    elif role == TEAM_VIEWER:
        _team("viewers of A", [Capability.VIEW], world.a).members.add(user)
    elif role == TEAM_FULL:
        _team("owners of A", list(Capability.values), world.a).members.add(user)
    elif role == OTHER_TEAM:
        _team("owners of B", list(Capability.values), world.b).members.add(user)
    elif role != STAFF:
        raise ValueError(f"No such role: {role}")
    return user


def client_for(role: str, world: World, csrf: bool = False) -> Client:
    """A django test Client logged in as `role` (anonymous: not logged in)."""
    client = Client(enforce_csrf_checks=csrf)
    user = user_for(role, world)
    if user is not None:
        client.force_login(user)
    return client
