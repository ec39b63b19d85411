"""The trace page: look up one request by its id, and the history of lookups.

A lookup changes things (it records a TraceLookup, and scanning a DLQ raises its messages' receive
counts, so it needs the permission to peek and is written to the audit trail), so it runs only when
the form is POSTed; the answer is then shown at `?lookup=<pk>`, a read-only address. A GET with
`id`, `pipeline` and `hours` only fills the form in: links from the DLQ page, the pipeline page and
the lookup history point there, and the operator presses Trace.

A lookup over all pipelines searches only those the user may trace, and receives only from the DLQs of
those they may peek at (`pipelines.access`); a user's lookup history is their own unless they hold
`view_tracelookup` globally.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from pipelines import access, clock
from pipelines.models import AuditAction, AuditEntry, AuditThrough, Pipeline, TraceLookup, TraceVerdict
from pipelines.trace import logs, lookup

TRACE_PERM = access.TRACE
#: Scanning a DLQ receives its messages, as a peek does: the same permission.
PEEK_PERM = access.PEEK
HISTORY_PERM = "pipelines.view_tracelookup"
MAX_HOURS = 14 * 24  # SQS keeps messages at most 14 days: older traces have nothing left to find


class TraceForm(forms.Form):
    id = forms.CharField(
        label="Id",
        max_length=1024,
        widget=forms.TextInput(attrs={"size": 50, "autofocus": True}),
        help_text="An API Gateway request id, an SQS message id or a correlation id.",
    )
    pipeline = forms.ModelChoiceField(
        queryset=Pipeline.objects.select_related("account"), required=False, empty_label="All pipelines"
    )
    hours = forms.IntegerField(
        label="Window (hours back)", min_value=1, max_value=MAX_HOURS, initial=lookup.DEFAULT_HOURS, required=False
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:  # only the pipelines the user may trace
            self.fields["pipeline"].queryset = access.visible(user, self.fields["pipeline"].queryset, TRACE_PERM)

    def clean_id(self) -> str:
        try:
            return logs.clean_id(self.cleaned_data.get("id", ""))
        except logs.TraceInputError as exc:
            raise forms.ValidationError(str(exc)) from exc


def rerun_url(entry: TraceLookup) -> str:
    """The trace form filled in with a stored lookup's id, pipeline and window (submitting it runs it again)."""
    params = {"id": entry.ident, "hours": entry.window_hours}
    if entry.pipeline_id:
        params["pipeline"] = entry.pipeline_id
    return f"{reverse('admin:trace')}?{urlencode(params)}"


def may_scan_dlqs(user) -> bool:
    """Whether a lookup run by `user` may receive DLQ messages (of at least one pipeline); None is a
    process acting for itself."""
    return user is None or access.can(user, PEEK_PERM)


def scannable(user, pipelines: list[Pipeline]) -> bool | frozenset[int]:
    """Which of these pipelines' DLQs a lookup by `user` may receive from: all (True), none (False),
    or those ids."""
    if user is None or access.is_global(user, PEEK_PERM):
        return True
    return frozenset(p.pk for p in pipelines if access.can(user, PEEK_PERM, p))


def traceable(user) -> list[Pipeline]:
    """The pipelines a lookup over all of them searches: the enabled ones `user` may trace."""
    qs = Pipeline.objects.filter(enabled=True).select_related("account")
    return list(qs if user is None else access.visible(user, qs, TRACE_PERM))


def run_lookup(
    user,
    ident: str,
    pipeline: Pipeline | None,
    hours: int,
    *,
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
    may_scan: bool = True,
    **options,
) -> TraceLookup:
    """Run a lookup and store it, and audit it (one TRACE_LOOKUP: it may show message bodies and log
    lines) and each DLQ it received from; the tests call this as the view does. `may_scan` False keeps
    it from receiving from any DLQ (an API token without the peek scope)."""
    start, end = lookup.default_window(clock.now(), hours)
    pipelines = [pipeline] if pipeline else traceable(user)
    scan = scannable(user, pipelines) if may_scan else False
    result = lookup.lookup(ident, pipelines, start, end, scan_dlqs=scan, **options)
    entry = TraceLookup.objects.create(
        user=user if getattr(user, "pk", None) else None,
        username=getattr(user, "username", ""),
        ident=result["id"],
        pipeline=pipeline,
        pipeline_name=pipeline.name if pipeline else "",
        window_start=start,
        window_end=end,
        verdict=result["verdict"],
        summary=result,
        calls_made=result["total_calls"],
    )
    AuditEntry.record(
        AuditAction.TRACE_LOOKUP,
        user,
        pipeline,
        remote_addr=remote_addr,
        through=through,
        lookup=entry.pk,
        ident=entry.ident,
        scope=pipeline.name if pipeline else "all pipelines",
        hours=hours,
        verdict=entry.verdict,
    )
    by_pk = {p.pk: p for p in pipelines}
    for row in result["dlqs"]:
        if row["searched"]:  # received from (a scan that failed at once may have received nothing)
            AuditEntry.record(
                AuditAction.TRACE_DLQ_SCAN,
                user,
                by_pk.get(row["pipeline_id"]),
                remote_addr=remote_addr,
                through=through,
                queue_url=row["queue_url"],
                lookup=entry.pk,
                ident=entry.ident,
                received=row["examined"],
                complete=row["complete"],
                found=any(e.get("queue_url") == row["queue_url"] for e in result["timeline"] if e["kind"] == "dlq"),
                error=row["error"],
            )
    return entry


def _prefill(params) -> dict:
    """The form's initial values from a link's query string; nothing is validated or run here."""
    try:
        hours = min(MAX_HOURS, max(1, int(params.get("hours") or lookup.DEFAULT_HOURS)))
    except ValueError:
        hours = lookup.DEFAULT_HOURS
    return {"id": params.get("id", "")[:128], "pipeline": params.get("pipeline") or None, "hours": hours}


def readable(request, entry: TraceLookup) -> bool:
    """A stored lookup is its owner's (or everyone's for those who may read every lookup), and only
    while they may still trace its pipeline: it holds that pipeline's log lines."""
    if entry.user_id != request.user.pk and not access.is_global(request.user, HISTORY_PERM):
        return False
    return entry.pipeline is None or access.can(request.user, TRACE_PERM, entry.pipeline)


def _stored(request, pk: str) -> TraceLookup:
    """A stored lookup the user may read (see `readable`); any other is not found."""
    try:
        entry = TraceLookup.objects.select_related("pipeline").get(pk=int(pk))
    except (ValueError, TraceLookup.DoesNotExist):
        raise Http404("No such lookup.") from None
    if not readable(request, entry):
        raise Http404("No such lookup.")
    return entry


def trace_page(request, admin_site):
    if not access.can(request, TRACE_PERM):
        raise PermissionDenied
    entry = None
    if request.method == "POST":
        form = TraceForm(request.POST, user=request)
        if form.is_valid():
            data = form.cleaned_data
            entry = run_lookup(
                request.user,
                data["id"],
                data["pipeline"],
                data["hours"] or lookup.DEFAULT_HOURS,
                remote_addr=request.META.get("REMOTE_ADDR"),
            )
            return redirect(f"{reverse('admin:trace')}?{urlencode({'lookup': entry.pk})}")
    elif "lookup" in request.GET:
        entry = _stored(request, request.GET["lookup"])
        initial = {"id": entry.ident, "pipeline": entry.pipeline_id, "hours": entry.window_hours}
        form = TraceForm(initial=initial, user=request)
    else:
        form = TraceForm(initial=_prefill(request.GET), user=request)
    context = {
        **admin_site.each_context(request),
        "title": "Trace a request",
        "form": form,
        "entry": entry,
        "prefilled": entry is None and bool(request.GET.get("id")),
        "can_peek": may_scan_dlqs(request.user),
        "result": entry.summary if entry else None,
        "verdict": TraceVerdict(entry.verdict) if entry else None,
        "history": TraceLookup.objects.filter(user=request.user)[:10] if request.user.pk else [],
        "history_url": reverse("admin:pipelines_tracelookup_changelist"),
    }
    return TemplateResponse(request, "admin/pipelines/trace/lookup.html", context)
