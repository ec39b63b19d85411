"""Admin for the registry's pipelines (with sync and redrive actions); AWS accounts are in admin/accounts.py.

A team member sees the pipelines their teams own (`admin.scoping`); changing a pipeline's own fields,
adding and deleting pipelines are the global role's."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from pipelines import access, clock
from pipelines.admin.incidents import AlertRuleInline, RulesEditable
from pipelines.admin.scoping import PipelineScoped
from pipelines.admin.support import badge, error_text
from pipelines.admin.tagging import GroupFilter, TagFilter
from pipelines.alerting import incidents
from pipelines.alerting.history import stored_trend
from pipelines.collection import cycles
from pipelines.collection.cost import monthly_cost
from pipelines.dlq.views import redrive_action
from pipelines.formatting import count, duration, human_seconds
from pipelines.models import AuditAction, Pipeline
from pipelines.registry.discovery import DiscoveryError, store_discovery
from pipelines.registry.forms import PipelineForm
from pipelines.registry.identity import discover_registration, reach_of
from pipelines.registry.insights import insights_for
from pipelines.registry.tags import format_tags
from pipelines.ui import urls


class ProblemFilter(admin.SimpleListFilter):
    title = "problems"
    parameter_name = "problem"

    def lookups(self, request, model_admin):
        return [
            ("errors", "Sync errors"),
            ("dlq", "Messages in DLQ"),
            ("no_dlq", "No DLQ"),
            ("no_consumer", "No consumer"),
            ("backlog", "Backlog above threshold"),
        ]

    def queryset(self, request, queryset):
        v = self.value()
        if v == "errors":
            return queryset.exclude(last_error="", metrics_error="")
        if v == "dlq":
            return queryset.filter(dlq_depth__gt=0)
        if v == "no_dlq":
            return queryset.filter(dlq_url="")
        if v == "no_consumer":
            return queryset.filter(function_name="")
        if v == "backlog":
            return queryset.filter(backlog__gt=F("backlog_threshold"))
        return queryset


DISCOVERED = (
    "queue_arn",
    "queue_name",
    "is_fifo",
    "visibility_timeout_words",
    "retention_period_words",
    "dlq_url",
    "dlq_arn",
    "max_receive_count",
    "dlq_retention_period_words",
    "function_name",
    "function_arn",
    "function_timeout_words",
    "reserved_concurrency",
    "batch_size",
    "maximum_concurrency",
    "report_batch_item_failures",
    "mapping_uuid",
    "mapping_state",
    "extra_mappings",
    "api_name",
    "api_passes_request_id",
    "discovered_at",
)
SYNC_STATE = (
    "status",
    "last_sync_at",
    "metrics_synced_until",
    "last_error",
    "metrics_error",
    "consecutive_failures",
    "backlog_words",
    "in_flight_words",
    "delayed_words",
    "dlq_depth_words",
    "oldest_age_words",
    "backlog_trend",
    "time_to_loss_words",
    "monthly_cost",
)


def in_words(field: str, label: str, fmt):
    """A read-only admin field showing a model field through `fmt`."""

    @admin.display(description=label, ordering=field)
    def show(self, obj):
        value = getattr(obj, field)
        return self.get_empty_value_display() if value is None else fmt(value)

    return show


@admin.register(Pipeline)
class PipelineAdmin(RulesEditable, PipelineScoped, admin.ModelAdmin):
    form = PipelineForm
    pipeline_path = ""
    list_display = (
        "name",
        "status",
        "account",
        "group",
        "backlog",
        "in_flight",
        "dlq_depth",
        "oldest",
        "consumer",
        "config_insights",
        "last_sync",
        "error",
        "charts",
    )
    list_select_related = ("account",)
    list_filter = (
        "health",
        ("account", admin.RelatedOnlyFieldListFilter),
        GroupFilter,
        TagFilter,
        "enabled",
        "is_fifo",
        ProblemFilter,
    )
    # tags: the JSON text, so a search for a key or a value finds the pipelines that carry it.
    search_fields = ("name", "group", "tags", "queue_url", "queue_name", "function_name", "api_id")
    readonly_fields = DISCOVERED + SYNC_STATE + ("insights", "aws_tags_words")
    actions = ["refresh_from_aws", "sync_now", "enable", "disable", "redrive_dlq"]
    #: Adding a pipeline here registers its queue (discovery ran in the form): audited as such.
    audit_add_action = AuditAction.PIPELINE_REGISTER
    fieldsets = (
        (None, {"fields": ("name", "account", "queue_url", "enabled")}),
        (
            "Group and tags",
            {
                "fields": ("group", "tags", "aws_tags_words"),
                "description": "Filters on the overview, incidents, /metrics and notification channels. The queue's "
                "AWS tags are read when it is saved or refreshed: they fill the tags not set here, and the "
                "PIPELINE_GROUP_TAG tag fills an empty group.",
            },
        ),
        (
            "API and logs",
            {
                "fields": (
                    "api_kind",
                    "api_id",
                    "api_stage",
                    "api_log_group",
                    "consumer_log_group",
                    "request_id_attribute",
                )
            },
        ),
        (
            "Polling and thresholds",
            {"fields": ("poll_interval", "backlog_threshold", "oldest_age_sla", "dlq_threshold")},
        ),
        (
            "Service-level objectives",
            {
                "fields": ("slo_freshness_target", "slo_dlq_max_percent", "slo_api_5xx_percent", "slo_api_latency_ms"),
                "description": "Over a rolling window (SLO_WINDOW_DAYS); empty fields take the settings' defaults. "
                "Freshness is judged against the oldest-message SLA above; the API objectives apply only where an "
                "API is discovered, and API latency shares the freshness target.",
            },
        ),
        ("Status", {"fields": SYNC_STATE}),
        (
            "Insights",
            {
                "fields": ("insights",),
                "description": "Configuration problems in what was discovered, each with its fix.",
            },
        ),
        (
            "Discovered from AWS",
            {
                "fields": DISCOVERED,
                "description": "Read from AWS when the pipeline is saved, and by the “Refresh from AWS” action.",
            },
        ),
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None:  # adding: nothing to show yet but what the operator gives (the AWS tags are not read yet)
            return [
                (None, self.fieldsets[0][1]),
                ("Group and tags", {"fields": ("group", "tags")}),
                *self.fieldsets[2:5],
            ]
        return self.fieldsets

    def get_inlines(self, request, obj):
        return [AlertRuleInline] if obj is not None else []  # rule defaults come from a saved pipeline

    def get_urls(self):
        return [*urls.pipeline_urls(self), *super().get_urls()]

    def audit_facts(self, obj) -> dict:
        """What the audit trail notes of a pipeline added, changed or deleted here."""
        return {"queue_url": obj.queue_url, "account": obj.account.name if obj.account_id else ""}

    def save_model(self, request, obj, form, change):
        if change and not self.changes_pipeline(request, obj):
            return  # only its alert rule overrides were editable (saved with the inlines)
        found = form.discovery
        if found is not None:
            store_discovery(obj, found)
            for warning in found.warnings:
                self.message_user(request, warning, messages.WARNING)
            if not obj.dlq_url:
                self.message_user(
                    request,
                    f"{obj.name} has no dead-letter queue: failing messages are retried until they expire.",
                    messages.WARNING,
                )
            if not obj.function_name:
                self.message_user(
                    request, f"{obj.name}: no Lambda event-source mapping reads this queue.", messages.WARNING
                )
        super().save_model(request, obj, form, change)

    @admin.display(description="health", ordering="health")
    def status(self, obj):
        status, reasons = obj.current_health()
        if reasons:
            return format_html(
                "{}<br>{}", badge(status), format_html_join(", ", "<small>{}</small>", ((r,) for _, r in reasons))
            )
        return badge(status)

    @admin.display(description="")
    def charts(self, obj):
        return format_html('<a href="{}">dashboard</a>', reverse("admin:pipelines_pipeline_dashboard", args=[obj.pk]))

    @admin.display(description="configuration")
    def insights(self, obj):
        return render_to_string("admin/pipelines/_insights.html", {"insights": insights_for(obj), "bare": True})

    @admin.display(description="insights")
    def config_insights(self, obj):
        """The worst configuration insight and how many there are; computed from the row, no queries."""
        found = insights_for(obj)
        if not found:
            return mark_safe('<span class="ob-muted">none</span>')
        return format_html(
            '<span class="ob-badge" style="background:{}" title="{}">{} · {}</span>',
            found[0].severity.colour,
            "\n".join(i.title for i in found),
            found[0].severity.label,
            len(found),
        )

    @admin.display(description="AWS tags")
    def aws_tags_words(self, obj):
        return format_tags(obj.aws_tags) or self.get_empty_value_display()

    @admin.display(description="oldest", ordering="oldest_age")
    def oldest(self, obj):
        return human_seconds(obj.oldest_age)

    # The change page's figures in words: configured durations in their unit, measured ones rounded.
    visibility_timeout_words = in_words("visibility_timeout", "visibility timeout", duration)
    retention_period_words = in_words("retention_period", "retention period", duration)
    dlq_retention_period_words = in_words("dlq_retention_period", "DLQ retention period", duration)
    function_timeout_words = in_words("function_timeout", "function timeout", duration)
    backlog_words = in_words("backlog", "backlog", count)
    in_flight_words = in_words("in_flight", "in flight", count)
    delayed_words = in_words("delayed", "delayed", count)
    dlq_depth_words = in_words("dlq_depth", "DLQ depth", count)
    oldest_age_words = in_words("oldest_age", "oldest message age", human_seconds)

    @admin.display(description="backlog trend", ordering="drain_rate")
    def backlog_trend(self, obj):
        return stored_trend(obj).drain.label

    @admin.display(description="time to loss", ordering="time_to_loss")
    def time_to_loss_words(self, obj):
        return "no data" if obj.backlog is None else stored_trend(obj).loss_label

    @admin.display(description="consumer", ordering="function_name")
    def consumer(self, obj):
        if not obj.function_name:
            return mark_safe('<span class="ob-muted">none</span>')
        state = "" if obj.mapping_state in ("Enabled", "") else f" ({obj.mapping_state.lower()})"
        return f"{obj.function_name}{state}"

    @admin.display(description="last sync", ordering="last_sync_at")
    def last_sync(self, obj):
        return f"{timesince(obj.last_sync_at, clock.now())} ago" if obj.last_sync_at else "never"

    @admin.display(description="error")
    def error(self, obj):
        return error_text(obj.last_error or obj.metrics_error)

    @admin.display(description="estimated AWS API cost")
    def monthly_cost(self, obj):
        cost = monthly_cost(obj, obj.account.unsupported_statistics)
        return (
            f"${cost['total']:.2f}/month: {cost['sqs_calls']:,.0f} SQS requests (${cost['sqs']:.3f}) + "
            f"{cost['metrics_requested']:,.0f} CloudWatch metrics (${cost['cloudwatch']:.2f})"
        )

    @admin.action(description="Refresh from AWS", permissions=["change"])
    def refresh_from_aws(self, request, queryset):
        done, failed, reaches = 0, [], {}
        for p in queryset.select_related("account"):
            try:
                if p.account_id not in reaches:
                    reaches[p.account_id] = reach_of(p.account)
                found = discover_registration(
                    p.account,
                    p.queue_url,
                    p.api_kind,
                    p.api_id,
                    p.api_stage,
                    p.request_id_attribute,
                    pipeline_pk=p.pk,
                    reach=reaches[p.account_id],
                )
            except DiscoveryError as exc:
                failed.append(f"{p.name}: {exc}")
                continue
            store_discovery(p, found)
            p.save()
            self.log_change(request, p, [{"changed": {"fields": ["Discovered from AWS"]}}])
            done += 1
            for w in found.warnings:
                self.message_user(request, f"{p.name}: {w}", messages.WARNING)
        if done:
            self.message_user(request, f"Refreshed {done} pipeline(s) from AWS.", messages.SUCCESS)
        for f in failed:
            self.message_user(request, f, messages.ERROR)

    @admin.action(description="Sync now (queue counts and CloudWatch metrics)", permissions=["change"])
    def sync_now(self, request, queryset):
        reports = cycles.sync_pipelines(list(queryset.select_related("account")))
        failed = {name: why for r in reports for name, why in r.errors.items()}
        calls = sum(r.api_calls for r in reports)
        self.message_user(
            request,
            f"Synced {queryset.count()} pipeline(s) with {calls} AWS call(s).",
            messages.SUCCESS if not failed else messages.WARNING,
        )
        for name, why in failed.items():
            self.message_user(request, f"{name}: {why}", messages.ERROR)

    def has_redrive_permission(self, request):
        return access.can(request, access.REDRIVE)  # on at least one: the action keeps only those

    @admin.action(description="Redrive DLQ", permissions=["redrive"])
    def redrive_dlq(self, request, queryset):

        return redrive_action(self, request, queryset)

    @admin.action(description="Enable polling", permissions=["change"])
    def enable(self, request, queryset):
        self.message_user(request, f"Enabled {self._set_enabled(request, queryset, True)} pipeline(s).")

    def _set_enabled(self, request, queryset, enabled: bool) -> int:
        """Switch polling on or off, each pipeline changed written to the audit trail."""
        changed = list(queryset.exclude(enabled=enabled))
        count = queryset.model.objects.filter(pk__in=[p.pk for p in changed]).update(enabled=enabled)
        for p in changed:
            self.log_change(request, p, [{"changed": {"fields": ["Enabled"]}}])
        return count

    @admin.action(description="Disable polling", permissions=["change"])
    def disable(self, request, queryset):
        count = self._set_enabled(request, queryset, False)
        resolved = incidents.resolve_disabled()  # nobody watches a disabled pipeline: its incidents end
        self.message_user(
            request, f"Disabled {count} pipeline(s)" + (f"; resolved {resolved} open incident(s)." if resolved else ".")
        )
