"""The overview, the admin site's landing page: problems first, the rest counted, one page at a time.

It reads one table: health, trend and sparkline are stored on each pipeline after every sync, and
health as of now (staleness) is worked out by the database (overview_query). The page's query count
does not depend on the number of pipelines: the counts are two GROUP BY queries, the rows one page,
and the per-row extras (SLO budgets, incident badges) are fetched for that page only.

The 30-second refresh (overview/rows/ with `known=`) answers only what changed since what the page
holds: rows whose etag differs, the new order if it moved, the counts if they moved, and the sync
times that advanced; when nothing changed, a few dozen bytes.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe

from pipelines import access, clock
from pipelines.dlq import triage
from pipelines.models import AwsAccount, Pipeline
from pipelines.slo.windows import budgets_left
from pipelines.ui import incidents, spend
from pipelines.ui.access import require_view
from pipelines.ui.overview_counts import fragments
from pipelines.ui.overview_query import (
    PAGE_SIZE,
    Selection,
    counts,
    filtered,
    in_scope,
    last_page,
    page_of,
    scope,
    scope_size,
)
from pipelines.ui.overview_rows import build_rows, render_row, sparkline_svg

__all__ = ["OVERVIEW_FIELDS", "overview", "overview_rows", "sparkline_svg", "top_spenders"]

REFRESH_SECONDS = 30
#: The most rows a refresh may say the page holds (two pages' worth: a page, and slack).
MAX_KNOWN = 2 * PAGE_SIZE
SYNC_MARGIN_SECONDS = 60

#: What an overview row shows: loading only these keeps 500 rows cheap.
OVERVIEW_FIELDS = (
    "name",
    "account__name",
    "group",
    "enabled",
    "last_sync_at",
    "poll_interval",
    "health",
    "health_reasons",
    "drain_rate",
    "time_to_loss",
    "time_to_loss_known",
    "forecast_minutes",
    "recent_errors",
    "recent_throttles",
    "recent_invocations",
    "sparkline",
    "backlog",
    "backlog_threshold",
    "in_flight",
    "dlq_url",
    "dlq_depth",
    "oldest_age",
    "retention_period",
    "oldest_age_sla",
    "is_fifo",
    "function_name",
    "last_error",
    "metrics_error",
    "slo_freshness_target",
    "slo_dlq_max_percent",
)


def _page(request, at: datetime) -> dict:
    """The selection, its counts, and the page of rows with their extras (a fixed number of queries)."""
    require_view(request)
    sel = Selection.from_query(request.GET)
    mine = access.visible(request, Pipeline.objects.all())  # a team member's pipelines only
    base = filtered(sel, at, mine)
    found = counts(base)
    shown = scope(sel, found)
    size = scope_size(found, shown)
    page = min(sel.page, last_page(size))
    rows = build_rows(page_of(in_scope(base, shown), page, OVERVIEW_FIELDS), at, ordered=True)
    budgets = budgets_left([r.pipeline for r in rows], at)  # the SLOs' budget left: three queries
    causes = triage.causes_by_pipeline(r.pipeline.pk for r in rows)  # at most two queries
    for r in rows:
        r.budget_left = budgets.get(r.pipeline.pk)
        r.dlq_causes = causes.get(r.pipeline.pk, "")
    # One query for every unresolved incident (of the chosen account): the strip and the rows' badges.
    unresolved = incidents.unresolved_for(request.user, sel.account_id)
    on_page = {r.pipeline.pk for r in rows}
    by_pipeline = (
        incidents.counts_by_pipeline([i for i in unresolved if i.pipeline_id in on_page]) if unresolved else {}
    )
    # reverse() once: the row URL differs only by id.
    url = reverse("admin:pipelines_pipeline_dashboard", args=[0]).replace("/0/", "/{pk}/")
    rendered = [render_row(r, url, at, by_pipeline, incidents.changelist_url()) for r in rows]
    accounts = list(_accounts(request, mine))
    return {
        "sel": sel,
        "rows": rows,
        "rendered": rendered,
        "rows_html": mark_safe("\n".join(html for html, _ in rendered)),  # escaped value by value
        "counted": fragments(sel, found, accounts, shown, size, page),
        "accounts": accounts,
        "groups": sorted(g for g in found.by_group if g),
        "at": at,
        "page": page,
        "unresolved_incidents": unresolved,
        "selected_account": sel.account if sel.account_id is not None else "",
        "narrowed": sel.narrowed,
        "refresh_seconds": REFRESH_SECONDS,
    }


def _accounts(request, mine):
    """The accounts to choose from: all of them for the global role, else those of the user's pipelines."""
    accounts = AwsAccount.objects.order_by("name").only("name")
    if access.owned_q(request.user, access.VIEW) is None:
        return accounts
    return accounts.filter(pk__in=mine.values("account_id"))


def overview(request, site, extra_context=None):
    """Problems first: health, backlog, DLQ, age vs SLA and retention, drain, errors; the rest counted.

    A signed-in user who may view no pipeline (a new single sign-on user whose groups map to no team)
    lands on a page that says so, not on a refusal."""
    if not access.can(request, access.VIEW):
        request.current_app = site.name
        context = {
            **site.each_context(request),
            "title": "Pipelines",
            "sso_enabled": settings.OIDC_ENABLED,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/pipelines/no_pipelines.html", context)
    context = {
        **site.each_context(request),
        "title": "Pipelines",
        **_page(request, clock.now()),
        **(extra_context or {}),
    }
    context["incidents"] = incidents.overview_strip(request, context["unresolved_incidents"], request.get_full_path())
    request.current_app = site.name
    return TemplateResponse(request, "admin/pipelines/overview.html", context)


def top_spenders(request):
    """The top spenders, fetched once after the page: they read every pipeline's month of rollups,
    which grows with the fleet, so the page does not wait for them (and the refresh never asks)."""
    require_view(request)
    account_id = Selection.from_query(request.GET).account_id
    mine = access.visible(request, Pipeline.objects.all())
    context = {"top_spenders": spend.top_spenders(clock.now(), account_id, among=mine)}
    return TemplateResponse(request, "admin/pipelines/_top_spenders.html", context)


def overview_rows(request):
    """The refresh: with `known=` what changed, as JSON; without, the table body alone (HTML)."""
    if "known" not in request.GET:
        return TemplateResponse(request, "admin/pipelines/_overview_rows.html", _page(request, clock.now()))
    return JsonResponse(changes(request, clock.now()))


def _known(value: str) -> list[tuple[int, str]]:
    """The page's rows as the browser holds them: `pk.etag` pairs, comma-separated, in order."""
    out = []
    for item in value.split(",")[:MAX_KNOWN]:
        pk, _, tag = item.partition(".")
        if pk.isascii() and pk.isdigit() and len(pk) < 12 and tag.isascii() and tag.isalnum() and len(tag) <= 16:
            out.append((int(pk), tag))
    return out


def _since(value: str) -> float | None:
    try:
        return float(value) if len(value) < 24 else None
    except ValueError:
        return None


def changes(request, at: datetime) -> dict:
    """What changed on the page since the browser's copy: only rows, order and counts that differ."""
    ctx = _page(request, at)
    known = _known(request.GET.get("known", ""))
    held = set(known)
    now_listed = [(r.pipeline.pk, tag) for r, (_, tag) in zip(ctx["rows"], ctx["rendered"], strict=True)]
    out: dict = {"at": at.timestamp()}
    if now_listed != known:
        out["order"] = [pk for pk, _ in now_listed]
        out["rows"] = {
            str(pk): html
            for (pk, tag), (html, _) in zip(now_listed, ctx["rendered"], strict=True)
            if (pk, tag) not in held
        }
        if not now_listed:
            out["empty"] = _empty_message(ctx["narrowed"])
    counted, held_counts = ctx["counted"], request.GET.get("counts", "")
    if held_counts != counted["etag"]:
        if held_counts.partition("-")[0] == counted["shape"]:  # the same lines: their numbers will do
            out["counts"] = {k: counted["parts"][k] for k in ("chips", "pager")}
            out["lines"] = counted["lines"]
        else:
            out["counts"] = counted["parts"]
        out["counts_etag"] = counted["etag"]
    since = _since(request.GET.get("since", ""))
    # A sync stamps its clock before it commits: one stamped just before the browser's last answer
    # may have become visible after it, so the sync times of the last minute before it come again.
    after = None if since is None else since - SYNC_MARGIN_SECONDS
    synced = {
        str(r.pipeline.pk): r.pipeline.last_sync_at.timestamp()
        for r in ctx["rows"]
        if r.pipeline.last_sync_at and (after is None or r.pipeline.last_sync_at.timestamp() > after)
    }
    if synced:
        out["synced"] = synced
    return out


def _empty_message(narrowed: bool) -> str:
    what = "No pipelines match these filters." if narrowed else "No pipelines yet."
    return f'<tr><td colspan="12" class="ob-empty">{what}</td></tr>'
