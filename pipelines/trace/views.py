"""The trace page: look up one request by its id, and the history of lookups."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse

from pipelines import clock
from pipelines.models import Pipeline, TraceLookup, TraceVerdict
from pipelines.trace import logs, lookup

TRACE_PERM = "pipelines.lookup_trace"
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

    def clean_id(self) -> str:
        try:
            return logs.clean_id(self.cleaned_data.get("id", ""))
        except logs.TraceInputError as exc:
            raise forms.ValidationError(str(exc)) from exc


def rerun_url(entry: TraceLookup) -> str:
    params = {"id": entry.ident, "hours": entry.window_hours}
    if entry.pipeline_id:
        params["pipeline"] = entry.pipeline_id
    return f"{reverse('admin:trace')}?{urlencode(params)}"


def run_lookup(user, ident: str, pipeline: Pipeline | None, hours: int, **options) -> TraceLookup:
    """Run a lookup and store it; the tests call this as the view does."""
    start, end = lookup.default_window(clock.now(), hours)
    pipelines = [pipeline] if pipeline else list(Pipeline.objects.filter(enabled=True).select_related("account"))
    result = lookup.lookup(ident, pipelines, start, end, explicit=pipeline is not None, **options)
    return TraceLookup.objects.create(
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


def trace_page(request, admin_site):
    if not request.user.has_perm(TRACE_PERM):
        raise PermissionDenied
    # Only a submitted id runs a lookup; a link with just ?pipeline=… pre-fills the form.
    if "id" in request.GET:
        params = request.GET.copy()
        params["hours"] = params.get("hours") or lookup.DEFAULT_HOURS  # shown, so the window searched is visible
        form = TraceForm(params)
    else:
        form = TraceForm(initial={"pipeline": request.GET.get("pipeline") or None, "hours": lookup.DEFAULT_HOURS})
    entry = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        entry = run_lookup(request.user, data["id"], data["pipeline"], data["hours"] or lookup.DEFAULT_HOURS)
    context = {
        **admin_site.each_context(request),
        "title": "Trace a request",
        "form": form,
        "entry": entry,
        "result": entry.summary if entry else None,
        "verdict": TraceVerdict(entry.verdict) if entry else None,
        "history": TraceLookup.objects.filter(user=request.user)[:10] if request.user.pk else [],
        "history_url": reverse("admin:pipelines_tracelookup_changelist"),
    }
    return TemplateResponse(request, "admin/pipelines/trace/lookup.html", context)
