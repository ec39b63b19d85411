"""Incidents in the operator UI: the overview's strip, the pipeline page's panel, and the
acknowledge / resolve buttons they carry.

The alert evaluator (`alerting/evaluate.py`) opens, updates and resolves incidents; people acknowledge
them ("someone is on it": reminders stop) and may resolve them by hand. Both buttons are POSTs with the CSRF token that
need `pipelines.change_incident` on the incident's pipeline and go through the model's compare-and-set methods, so two operators
pressing the same button at once each get a sentence, never an error. Seeing incidents needs
`pipelines.view_incident` (a team member sees the incidents of their team's pipelines only); without it the strip, the row badges and the panel are left out and cost no
query. An incident a silence or maintenance window covers says so: "silenced until 14:00 UTC (reason, by
whom)" (`alerting.silences`, read once per page whatever the number of incidents). The strip narrows
by account, and by the pipelines' group and tag (registry/tags.py), as the overview does; its link to
the incident list carries the same group and tag filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from pipelines import access, clock
from pipelines.access.pages import row_or_404
from pipelines.alerting import silences
from pipelines.alerting.incidents import RESOLVE_AFTER, RESOLVE_HOLD, hold_ends
from pipelines.alerting.incidents import acknowledge as acknowledge_incident
from pipelines.alerting.incidents import resolve as resolve_incident
from pipelines.formatting import ago, human_seconds
from pipelines.models import UNRESOLVED, Incident, IncidentStatus, Pipeline, Severity
from pipelines.registry import tags
from pipelines.ui.access import account_filter, require_view

VIEW_PERM = "pipelines.view_incident"
CHANGE_PERM = "pipelines.change_incident"
STRIP_MAX = 8  # the overview strip shows this many; the rest are one click away in the list
RECENT_RESOLVED = 10
#: What the strip and the row badges read: one query for every unresolved incident.
STRIP_FIELDS = (
    "pipeline_id",
    "pipeline__name",
    "rule",
    "severity",
    "status",
    "summary",
    "opened_at",
    "acknowledged_at",
    "acknowledged_by",
    "last_seen_at",
    "pipeline__health_reasons",
    "pipeline__account_id",
)


@dataclass
class Item:
    """One incident as the strip and the panel show it, its times already in words."""

    incident: Incident
    pipeline_url: str
    opened: str
    acknowledged: str = ""
    resolved: str = ""
    duration: str = ""
    quiet: str = ""  # the rule no longer fires: since when, and when the incident resolves
    hold: str = ""  # the rule still fires: what resolving it by hand does
    hold_short: str = ""
    silenced: str = ""  # a silence or maintenance window covers it: until when, why, by whom
    can_change: bool = True  # the user may acknowledge / resolve it (on its pipeline)


@dataclass
class Box:
    """What `_incidents.html` renders: the overview strip (`panel=False`) or the pipeline page's panel."""

    items: list[Item]
    panel: bool
    can_change: bool
    next: str
    all_url: str
    more: int = 0
    recent: list[Item] = field(default_factory=list)


# --- reading ---------------------------------------------------------------------------------------


class Unresolved(NamedTuple):
    """One unresolved incident as the overview reads it: a plain row, so hundreds cost little."""

    pk: int
    pipeline_id: int
    pipeline_name: str
    rule: str
    severity: str
    status: str
    summary: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str
    last_seen_at: datetime
    findings: list  # the pipeline's stored findings: [severity, summary, rule]
    account_id: int | None = None

    @property
    def firing(self) -> bool:
        return any(len(f) > 2 and f[2] == self.rule for f in self.findings or [])

    def incident(self) -> Incident:
        """The model instance the template renders (made only for the few the strip shows)."""
        i = Incident(
            pk=self.pk,
            pipeline_id=self.pipeline_id,
            rule=self.rule,
            severity=self.severity,
            status=self.status,
            summary=self.summary,
            opened_at=self.opened_at,
            acknowledged_at=self.acknowledged_at,
            acknowledged_by=self.acknowledged_by,
            last_seen_at=self.last_seen_at,
        )
        i.pipeline = Pipeline(pk=self.pipeline_id, name=self.pipeline_name, health_reasons=self.findings)
        return i


def unresolved_for(user, account_id: int | None = None, group: str = "", tag: str = "") -> list[Unresolved] | None:
    """Every open or acknowledged incident (of one account's pipelines, of a group, carrying a tag), in
    one query; None when the user may not see incidents. Raises tags.TagError for a tag that cannot be read."""
    if not access.can(user, VIEW_PERM):
        return None
    qs = access.visible(user, Incident.objects.filter(status__in=UNRESOLVED), VIEW_PERM, "pipeline__")
    if account_id is not None:
        qs = qs.filter(pipeline__account_id=account_id)
    if group:
        qs = tags.filter_by_group(qs, group, prefix="pipeline__")
    if tag:
        qs = tags.filter_by_tag(qs, tag, prefix="pipeline__")
    return [Unresolved(*row) for row in qs.values_list("pk", *STRIP_FIELDS)]


_RANK = {s.value: s.rank for s in Severity}


def worst_first(incidents: list) -> list:
    """Critical before warning before info; within one severity, unacknowledged first, then newest."""
    return sorted(
        incidents, key=lambda i: (_RANK[i.severity], i.status != IncidentStatus.OPEN, -i.opened_at.timestamp(), -i.pk)
    )


def counts_by_pipeline(incidents: list[Unresolved]) -> dict[int, tuple[int, Severity]]:
    """pipeline id -> (unresolved incidents, the worst severity among them), for the overview's badges."""
    counts: dict[int, int] = {}
    worst: dict[int, str] = {}
    for i in incidents:
        counts[i.pipeline_id] = counts.get(i.pipeline_id, 0) + 1
        if _RANK[i.severity] < _RANK[worst.get(i.pipeline_id, Severity.INFO)]:
            worst[i.pipeline_id] = i.severity
    return {pk: (n, Severity(worst.get(pk, Severity.INFO))) for pk, n in counts.items()}


def changelist_url(**params) -> str:
    url = reverse("admin:pipelines_incident_changelist")
    return f"{url}?{urlencode(params)}" if params else url


HOLD_FOR = human_seconds(RESOLVE_HOLD.total_seconds())
HOLD_NOTE = (
    f"Its rule still fires: resolved by hand, it stays resolved for {HOLD_FOR} "
    "(no new page) unless it gets worse, then reopens if the condition still holds."
)
HOLD_SHORT = f"still firing: stays resolved {HOLD_FOR}"


def _quiet(i: Incident, at, firing: bool) -> str:
    """For an unresolved incident whose rule no longer fires (the pipeline's findings say so): how
    long it has been quiet and when it resolves if it stays so."""
    if firing or not i.is_unresolved:
        return ""
    resolves = i.last_seen_at + RESOLVE_AFTER
    when = "at the next evaluation" if resolves <= at else f"in {human_seconds((resolves - at).total_seconds())}"
    return f"quiet since {ago(i.last_seen_at, at)}; resolves {when} if it stays quiet"


def _silenced(covers: silences.Covers | None, i, account_id: int | None, at) -> str:
    cover = covers.find(i.pipeline_id, account_id, i.rule) if covers else None
    return cover.label(at) if cover is not None else ""


def _item(i: Incident, at, dashboard_url: str, firing: bool = True, silenced: str = "") -> Item:
    return Item(
        incident=i,
        pipeline_url=dashboard_url.format(pk=i.pipeline_id),
        opened=ago(i.opened_at, at),
        acknowledged=ago(i.acknowledged_at, at) if i.acknowledged_at else "",
        resolved=ago(i.resolved_at, at) if i.resolved_at else "",
        duration=human_seconds(i.duration.total_seconds()) if i.resolved_at else "",
        quiet=_quiet(i, at, firing),
        hold=HOLD_NOTE if firing and i.is_unresolved else "",
        hold_short=HOLD_SHORT if firing and i.is_unresolved else "",
        silenced=silenced,
    )


def _dashboard_url() -> str:
    # reverse() once: the URL differs only by id.
    return reverse("admin:pipelines_pipeline_dashboard", args=[0]).replace("/0/", "/{pk}/")


def overview_strip(
    request, incidents: list[Unresolved] | None, next_url: str, group: str = "", tag: str = ""
) -> Box | None:
    """The overview's strip from the already-fetched unresolved incidents (no query of its own); `group`
    and `tag`: the filters they were read with, carried into the link to the incident list."""
    if incidents is None:
        return None
    at, url = clock.now(), _dashboard_url()
    ordered = worst_first(incidents)
    shown = ordered[:STRIP_MAX]
    covers = silences.load(at, {i.pipeline_id for i in shown}) if shown else None
    items = [_item(i.incident(), at, url, i.firing, _silenced(covers, i, i.account_id, at)) for i in shown]
    may_change = _changeable(request, {i.pipeline_id for i in shown})
    for it in items:
        it.can_change = it.incident.pipeline_id in may_change
    return Box(
        items=items,
        more=max(len(ordered) - STRIP_MAX, 0),
        panel=False,
        can_change=access.can(request, CHANGE_PERM),
        next=next_url,
        all_url=changelist_url(status="unresolved", **{k: v for k, v in (("group", group), ("tag", tag)) if v}),
    )


def _changeable(request, pipeline_ids: set[int]) -> set[int]:
    """Which of these pipelines' incidents the user may acknowledge and resolve (one query at most)."""
    if not pipeline_ids or not access.can(request, CHANGE_PERM):
        return set()
    mine = access.visible(request, Pipeline.objects.filter(pk__in=pipeline_ids), CHANGE_PERM)
    return set(mine.values_list("pk", flat=True))


def pipeline_panel(request, pipeline: Pipeline) -> Box | None:
    """The pipeline page's panel: its unresolved incidents and the last few resolved ones (two queries)."""
    if not access.can(request, VIEW_PERM, pipeline):
        return None
    at, url = clock.now(), _dashboard_url()
    mine = Incident.objects.filter(pipeline=pipeline)
    open_ = worst_first(list(mine.filter(status__in=UNRESOLVED)))
    firing = {rule for _, _, rule in pipeline.findings()}
    recent = mine.filter(status=IncidentStatus.RESOLVED).order_by("-resolved_at", "-pk")[:RECENT_RESOLVED]
    covers = silences.load(at, [pipeline.pk]) if open_ else None
    return Box(
        items=[_item(i, at, url, i.rule in firing, _silenced(covers, i, pipeline.account_id, at)) for i in open_],
        recent=[_item(i, at, url) for i in recent],
        panel=True,
        can_change=access.can(request, CHANGE_PERM, pipeline),
        next=request.get_full_path(),
        all_url=changelist_url(pipeline__id__exact=pipeline.pk),
    )


def strip(request):
    """The strip alone, for the overview's periodic refresh; `?…` carries the overview's filters."""
    require_view(request)
    query, account = request.GET.urlencode(), request.GET.get("account", "")
    group, tag = request.GET.get("group", "").strip(), request.GET.get("tag", "").strip()
    next_url = reverse("admin:index") + (f"?{query}" if query else "")
    try:
        found = unresolved_for(request.user, account_filter(account), group, tag)
    except tags.TagError:
        found = [] if access.can(request, VIEW_PERM) else None  # the overview says why; match nothing
    box = overview_strip(request, found, next_url, group, tag)
    return TemplateResponse(request, "admin/pipelines/_incidents.html", {"incidents": box})


# --- acting ----------------------------------------------------------------------------------------


def _back(request):
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    if nxt and url_has_allowed_host_and_scheme(
        nxt, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(nxt)  # a URL, never a view name to reverse
    return redirect("admin:index")


def _act(request, incident_id: int, verb: str):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    # Not visible: 404; visible but not this user's to change: 403.
    incident = row_or_404(request, Incident.objects.select_related("pipeline"), incident_id, CHANGE_PERM)
    who = request.user.get_username()
    acting = {"user": request.user, "remote_addr": request.META.get("REMOTE_ADDR")}
    title = f"#{incident.pk} {incident.pipeline.name} · {incident.get_rule_display()}"
    if verb == "acknowledge":
        if acknowledge_incident(incident, by=who, **acting):
            messages.success(request, f"Acknowledged: {title}.")
        else:
            incident.refresh_from_db(fields=["status", "acknowledged_by", "resolved_by"])
            messages.info(request, _why_not(incident))
    elif resolve_incident(incident, by=who, **acting):
        firing = incident.rule in {rule for _, _, rule in incident.pipeline.findings()}
        until = hold_ends(incident) if firing else None
        held = (
            f" Its rule still fires: it stays resolved until {until:%H:%M} UTC unless it gets worse." if until else ""
        )
        messages.success(request, f"Resolved: {title}.{held}")
    else:
        incident.refresh_from_db(fields=["status", "resolved_by"])
        messages.info(request, _why_not(incident))
    return _back(request)


def _why_not(incident: Incident) -> str:
    """Why a button did nothing: someone (or the evaluator) got there first."""
    if incident.status == IncidentStatus.RESOLVED:
        by = f" by {incident.resolved_by}" if incident.resolved_by else " (its condition cleared)"
        return f"Incident #{incident.pk} was already resolved{by}."
    by = f" by {incident.acknowledged_by}" if incident.acknowledged_by else ""
    return f"Incident #{incident.pk} was already acknowledged{by}."


def acknowledge(request, incident_id: int):
    """Open → acknowledged, by the signed-in user."""
    return _act(request, incident_id, "acknowledge")


def resolve(request, incident_id: int):
    """Open or acknowledged → resolved, by the signed-in user."""
    return _act(request, incident_id, "resolve")
