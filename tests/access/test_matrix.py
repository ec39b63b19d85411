"""Who gets what from every operator page, JSON endpoint and pipeline-owned admin page: one table,
one generated test per row, each checking every role (tests/access/roles.py).

Expected answers: OK (200, or a redirect that is not to the login page), LOGIN (sent to log in),
403 (refused), 404 (a pipeline the user may not view: as if it did not exist) and GONE (the admin's
answer for an object it cannot find: back to the admin's index with a message). The endpoints at
the site root (/metrics, /healthz, the PagerDuty webhook) answer to their own allow-list, probes and
signatures, not to users, and are tested with them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest
from django.urls import reverse

from pipelines.ui import urls
from tests.access.roles import (
    ANONYMOUS,
    OPERATOR,
    OTHER_TEAM,
    ROLES,
    STAFF,
    SUPERUSER,
    TEAM_FULL,
    TEAM_VIEWER,
    World,
    client_for,
    make_world,
)

OK, LOGIN, GONE = "ok", "login", "gone"


class Row(NamedTuple):
    name: str
    method: str
    url: Callable[[World], str]
    expected: dict[str, object]
    data: dict | None = None


def on_a(allowed: set[str]) -> dict[str, object]:
    """A page of pipeline A: OK for `allowed`, 403 for others who may view A, 404 for B's team."""
    out: dict[str, object] = {ANONYMOUS: LOGIN, STAFF: 403, OTHER_TEAM: 404}
    for role in (TEAM_VIEWER, TEAM_FULL, OPERATOR, SUPERUSER):
        out[role] = OK if role in allowed else 403
    return out


def listing(allowed: set[str]) -> dict[str, object]:
    """A page over many pipelines (or the admin's list of a model): OK for `allowed`, else 403."""
    return {role: LOGIN if role == ANONYMOUS else OK if role in allowed else 403 for role in ROLES}


def admin_object(allowed: set[str]) -> dict[str, object]:
    """An admin change page of one of A's rows: B's team does not find it."""
    return {**on_a(allowed), OTHER_TEAM: GONE if OTHER_TEAM in allowed else 403}


VIEWERS = {TEAM_VIEWER, TEAM_FULL, OPERATOR, SUPERUSER}
ACTORS = {TEAM_FULL, OPERATOR, SUPERUSER}
ANY_TEAM = VIEWERS | {OTHER_TEAM}
TRACERS = ACTORS | {OTHER_TEAM}


def pipe(name: str, *args) -> Callable[[World], str]:
    """The URL `name` of pipeline A, with `args` naming attributes of the world (task, scan, …)."""
    return lambda w: reverse(f"admin:pipelines_pipeline_{name}", args=[w.a.pk, *(getattr(w, x).pk for x in args)])


def site(name: str, query: str = "") -> Callable[[World], str]:
    return lambda w: reverse(f"admin:{name}") + query


def change(model: str, attr: str) -> Callable[[World], str]:
    return lambda w: reverse(f"admin:pipelines_{model}_change", args=[getattr(w, attr).pk])


TABLE: list[Row] = [
    # A pipeline's pages and JSON
    Row("dashboard", "get", pipe("dashboard"), on_a(VIEWERS)),
    Row("series.json", "get", pipe("series"), on_a(VIEWERS)),
    Row("slo page", "get", pipe("slo"), on_a(VIEWERS)),
    Row("spend.json", "get", pipe("spend"), on_a(VIEWERS)),
    Row("dlq page", "get", pipe("dlq"), on_a(VIEWERS)),
    Row("dlq peek", "post", pipe("dlq"), on_a(ACTORS), {"count": "1"}),
    Row("redrive confirmation", "get", pipe("dlq_redrive"), on_a(ACTORS)),
    Row("delete chosen messages", "post", pipe("dlq_delete"), on_a(ACTORS), {"ids": ""}),
    Row("purge confirmation", "get", pipe("dlq_purge"), on_a(ACTORS)),
    Row("search form", "get", pipe("dlq_search"), on_a(VIEWERS)),
    Row("search run", "post", pipe("dlq_search"), on_a(ACTORS), {"text": "x"}),
    Row("search export", "post", pipe("dlq_search_export"), on_a(ACTORS), {"text": "x"}),
    Row("search delete", "post", pipe("dlq_search_delete"), on_a(ACTORS), {"search": "text=x"}),
    Row(
        "edit & resend",
        "get",
        lambda w: reverse("admin:pipelines_pipeline_dlq_message_edit", args=[w.a.pk, "m-1"]),
        on_a(ACTORS),
    ),
    Row("triage page", "get", pipe("dlq_triage"), on_a(VIEWERS)),
    Row("triage scan", "get", pipe("dlq_triage_scan", "scan"), on_a(VIEWERS)),
    Row("triage progress", "get", pipe("dlq_triage_progress", "scan"), on_a(VIEWERS)),
    Row("task page", "get", pipe("dlq_task", "task"), on_a(VIEWERS)),
    Row("task progress", "get", pipe("dlq_task_progress", "task"), on_a(VIEWERS)),
    Row("task cancel", "post", pipe("dlq_task_cancel", "task"), on_a(ACTORS)),
    Row(
        "incident acknowledge",
        "post",
        lambda w: reverse("admin:incident_acknowledge", args=[w.incident.pk]),
        on_a(ACTORS),
    ),
    Row("incident resolve", "post", lambda w: reverse("admin:incident_resolve", args=[w.incident.pk]), on_a(ACTORS)),
    # Pages over many pipelines
    # a staff user who may view no pipeline lands on a page that says so (not a refusal)
    Row("overview", "get", site("index"), listing(ANY_TEAM | {STAFF})),
    Row("overview rows", "get", site("overview_rows"), listing(ANY_TEAM)),
    Row("overview refresh JSON", "get", site("overview_rows", "?known="), listing(ANY_TEAM)),
    Row("top spenders", "get", site("overview_spenders"), listing(ANY_TEAM)),
    Row("incident strip", "get", site("incident_strip"), listing(ANY_TEAM)),
    Row("trace form", "get", site("trace"), listing(TRACERS)),
    # another user's lookup is not found by those who may trace (only the global role reads every lookup)
    Row(
        "someone else's lookup",
        "get",
        lambda w: f"{reverse('admin:trace')}?lookup={w.lookup.pk}",
        {**listing({SUPERUSER}), **dict.fromkeys(TRACERS - {SUPERUSER}, 404)},
    ),
    # The admin
    Row("pipelines", "get", site("pipelines_pipeline_changelist"), listing(ANY_TEAM)),
    Row(
        "pipeline A", "get", lambda w: reverse("admin:pipelines_pipeline_change", args=[w.a.pk]), admin_object(ANY_TEAM)
    ),
    Row("incidents", "get", site("pipelines_incident_changelist"), listing(ANY_TEAM)),
    Row("incident of A", "get", change("incident", "incident"), admin_object(ANY_TEAM)),
    Row("dlq tasks", "get", site("pipelines_redrivetask_changelist"), listing(ANY_TEAM)),
    Row("dlq task of A", "get", change("redrivetask", "task"), admin_object(ANY_TEAM)),
    Row("trace lookups", "get", site("pipelines_tracelookup_changelist"), listing({SUPERUSER})),
    Row("trace lookup of A", "get", change("tracelookup", "lookup"), {**listing({SUPERUSER})}),
    Row("triage scans", "get", site("pipelines_triagescan_changelist"), listing(ANY_TEAM)),
    Row("triage scan of A", "get", change("triagescan", "scan"), admin_object(ANY_TEAM)),
    Row("audit trail", "get", site("pipelines_auditentry_changelist"), listing({SUPERUSER})),
    Row("audit entry of A", "get", change("auditentry", "audit"), listing({SUPERUSER})),
    Row("teams", "get", site("pipelines_team_changelist"), listing({SUPERUSER})),
    Row("add a team", "get", site("pipelines_team_add"), listing({SUPERUSER})),
]


def outcome(response, method: str) -> object:
    if response.status_code == 302:
        to = response["Location"]
        if reverse("admin:login") in to:
            return LOGIN
        # A page that is not found sends the admin back to its index; an action done, wherever it says.
        return GONE if method == "get" and to == reverse("admin:index") else OK
    return OK if response.status_code == 200 else response.status_code


@pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
def test_it_answers_each_role_as_the_table_says(row: Row, account):
    world = make_world(account)
    got = {}
    for role in ROLES:
        client = client_for(role, world)
        response = getattr(client, row.method)(row.url(world), row.data or {})
        got[role] = outcome(response, row.method)
    wrong = {
        role: f"expected {row.expected[role]}, got {got[role]}" for role in ROLES if got[role] != row.expected[role]
    }
    assert not wrong, f"{row.name}: {wrong}"


def test_the_table_covers_every_operator_page():
    """Every page under a pipeline and on the admin site (ui/urls.py) has a row."""

    class Admin:
        admin_site = SimpleNamespace(admin_view=lambda view: view)

    names = [p.name for p in (*urls.pipeline_urls(Admin()), *urls.site_urls(Admin.admin_site))]
    source = Path(__file__).read_text()
    missing = [
        n for n in names if f'"{n.removeprefix("pipelines_pipeline_")}"' not in source and f':{n}"' not in source
    ]
    assert not missing, missing
