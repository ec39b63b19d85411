"""Admin for incidents (list, acknowledge, resolve; which are silenced and until when) and the
per-pipeline rule overrides inline. A team member sees the incidents of their team's pipelines and
acknowledges or resolves those it may (ACKNOWLEDGE); rule overrides need MANAGE_RULES on the pipeline."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Case, IntegerField, Value, When
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from pipelines import access, clock
from pipelines.admin.scoping import PipelineScoped
from pipelines.admin.support import ReadOnly, badge, error_text
from pipelines.admin.tagging import PipelineGroupFilter, PipelineTagFilter
from pipelines.alerting import channels, incidents, silences
from pipelines.alerting.rules import RULES
from pipelines.formatting import ago, human_seconds, plural
from pipelines.models import (
    UNRESOLVED,
    AlertRule,
    Delivery,
    DeliveryStatus,
    Incident,
    IncidentStatus,
    Pipeline,
    RuleKind,
)


def rule_defaults(pipeline: Pipeline) -> list[tuple[str, str, bool]]:
    """(label, default for this pipeline, applies to it) per rule, from alerts.RULES."""
    return [(rule.label, rule.describe_default(pipeline), rule.applies(pipeline)) for rule in RULES.values()]


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ("kind", "enabled", "threshold", "minutes")

    def clean_threshold(self):
        value = self.cleaned_data.get("threshold")
        if value is not None and value < 0:
            raise forms.ValidationError("A threshold cannot be negative; leave it empty for the default.")
        return value

    def clean(self):
        data = super().clean()
        kind, minutes = data.get("kind"), data.get("minutes")
        if kind in RULES and minutes is not None and not RULES[RuleKind(kind)].has_window:
            self.add_error(
                "minutes",
                f"The “{RULES[RuleKind(kind)].label}” rule reads the latest values and has "
                "no window; leave this empty.",
            )
        return data


class AlertRuleFormSet(BaseInlineFormSet):
    @property
    def rule_defaults(self) -> list[tuple[str, str, bool]]:
        return rule_defaults(self.instance) if self.instance.pk else []


def _rule(action: str) -> str:
    return f"pipelines.{action}_alertrule"


#: Managing a pipeline's alert rules: any of these on it (a team's "rules" capability holds all three).
RULE_PERMS = (_rule("add"), _rule("change"), _rule("delete"))


class AlertRuleInline(admin.TabularInline):
    """Per-pipeline overrides; a rule without a row runs with its default."""

    model = AlertRule
    form = AlertRuleForm
    formset = AlertRuleFormSet
    template = "admin/pipelines/alertrule_inline.html"
    fields = ("kind", "enabled", "threshold", "minutes", "default")
    readonly_fields = ("default",)
    extra = 0
    verbose_name = "alert rule override"
    verbose_name_plural = "alert rule overrides"

    # `obj` is the pipeline whose page this is: its rules are changed by those who manage its rules.
    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and (obj is None or access.can(request, _rule("add"), obj))

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (
            obj is None or access.can(request, _rule("change"), obj)
        )

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (
            obj is None or access.can(request, _rule("delete"), obj)
        )

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and (
            obj is None or access.can(request, _rule("view"), obj) or access.can(request, _rule("change"), obj)
        )

    @admin.display(description="default for this pipeline")
    def default(self, obj):
        if not obj.pk or not obj.kind:
            return "–"
        return RULES[RuleKind(obj.kind)].describe_default(obj.pipeline)


class RulesEditable:
    """Mixed into the pipeline's ModelAdmin: whoever manages a pipeline's alert rules (a team's "rules"
    capability) saves its page for the rule overrides; the pipeline's own fields stay read-only unless
    they may also change the pipeline (its `save_model` then saves nothing but the inlines)."""

    def changes_pipeline(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self.changes_pipeline(request, obj) or (
            obj is not None and any(access.can(request, perm, obj) for perm in RULE_PERMS)
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None and not self.changes_pipeline(request, obj):
            return tuple(dict.fromkeys((*readonly, *flatten_fieldsets(self.get_fieldsets(request, obj)))))
        return readonly


class IncidentStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("unresolved", "Unresolved (open or acknowledged)"), *IncidentStatus.choices]

    def queryset(self, request, queryset):
        if self.value() == "unresolved":
            return queryset.filter(status__in=UNRESOLVED)
        if self.value() in IncidentStatus.values:
            return queryset.filter(status=self.value())
        return queryset


class DeliveryInline(ReadOnly, admin.TabularInline):
    """The notifications sent (or being retried) for an incident; read-only."""

    model = Delivery
    fields = ("created_at", "channel", "event", "delivery_status", "attempt_count", "sent_at", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "deliveries (one per channel and notification)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("channel")

    @admin.display(description="status")
    def delivery_status(self, obj):
        return badge(DeliveryStatus(obj.status))

    @admin.display(description="last error")
    def error(self, obj):
        return error_text(channels.scrub(obj.last_error, obj.channel), 119)


def silence_action(hours: int):
    """An incident-list action that opens the silence form for the selected incidents' pipeline and
    rule, ending `hours` from now; the operator gives the reason there and saves (nothing is made yet)."""

    def action(modeladmin, request, queryset):
        return modeladmin.silence_for(request, queryset, hours)

    action.__name__ = f"silence_{hours}h"
    return admin.action(description=f"Silence for {hours} h…", permissions=["silence"])(action)


LIFECYCLE = (
    "opened_at",
    "last_seen_at",
    "lasted",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by_name",
    "peak_severity",
)


@admin.register(Incident)
class IncidentAdmin(PipelineScoped, admin.ModelAdmin):
    list_display = (
        "number",
        "pipeline_link",
        "pipeline_group",
        "rule_label",
        "severity_badge",
        "status_badge",
        "summary",
        "opened",
        "lasted",
        "acknowledged",
        "notifications",
        "silenced",
    )
    list_display_links = ("number",)
    list_filter = (
        IncidentStatusFilter,
        "severity",
        "rule",
        ("pipeline__account", admin.RelatedOnlyFieldListFilter),  # only accounts of incidents the user sees
        PipelineGroupFilter,
        PipelineTagFilter,
        ("pipeline", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("pipeline",)
    search_fields = ("pipeline__name", "pipeline__group", "summary")
    date_hierarchy = "opened_at"
    actions = ["acknowledge_incidents", "resolve_incidents", silence_action(1), silence_action(4), silence_action(24)]
    inlines = [DeliveryInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "pipeline_link",
                    "rule_label",
                    "severity_badge",
                    "status_badge",
                    "summary",
                    "value",
                    "threshold",
                    "buttons",
                )
            },
        ),
        ("Lifecycle", {"fields": LIFECYCLE}),
        ("Notifications", {"fields": ("notifications", "last_notified_at", "silenced", "held")}),
    )
    readonly_fields = (
        "pipeline_link",
        "rule_label",
        "severity_badge",
        "status_badge",
        "summary",
        "value",
        "threshold",
        "buttons",
        *LIFECYCLE,
        "notifications",
        "last_notified_at",
        "silenced",
        "held",
    )

    def get_ordering(self, request):
        # Unresolved first, then newest; clicking a column header replaces it.
        settled = Case(When(status__in=UNRESOLVED, then=Value(0)), default=Value(1), output_field=IntegerField())
        return [settled.asc(), "-opened_at", "-pk"]

    def has_add_permission(self, request):
        return False  # the evaluator opens incidents

    def has_delete_permission(self, request, obj=None):
        return False  # they are the record of what happened

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Nothing on the page is editable: the buttons are Acknowledge and Resolve, not Save.
        extra = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_changelist_instance(self, request):
        """The page's incidents with what silences each, read once for the page (not once per row)."""
        cl = super().get_changelist_instance(request)
        rows = [i for i in cl.result_list if i.is_unresolved]
        at = clock.now()
        covers = silences.load(at, {i.pipeline_id for i in rows}) if rows else None
        for i in rows:
            cover = covers.find(i.pipeline_id, i.pipeline.account_id, i.rule)
            i.silenced_label = cover.label(at) if cover else ""
        return cl

    @admin.display(description="#", ordering="pk")
    def number(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="silenced")
    def silenced(self, obj):
        if not obj.is_unresolved:
            return ""
        label = getattr(obj, "silenced_label", None)
        if label is None:  # the incident's own page
            cover = silences.covering(obj)
            label = cover.label() if cover else ""
        return label

    @admin.display(description="held notification")
    def held(self, obj):
        if not obj.held_event:
            return "none"
        since = f"{obj.held_since:%Y-%m-%d %H:%M} UTC" if obj.held_since else "?"
        return f"{obj.get_held_event_display()}, held since {since}; sent when the silence ends if it is still open"

    @admin.display(description="pipeline", ordering="pipeline__name")
    def pipeline_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:pipelines_pipeline_dashboard", args=[obj.pipeline_id]),
            obj.pipeline.name,
        )

    @admin.display(description="group", ordering="pipeline__group")
    def pipeline_group(self, obj):
        return obj.pipeline.group or self.get_empty_value_display()

    @admin.display(description="rule", ordering="rule")
    def rule_label(self, obj):
        return obj.get_rule_display()

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj):
        return badge(obj.severity_choice)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status_choice)

    @admin.display(description="opened", ordering="opened_at")
    def opened(self, obj):
        return format_html(
            '<time datetime="{}" title="{}">{}</time>',
            obj.opened_at.isoformat(),
            obj.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
            ago(obj.opened_at, clock.now()),
        )

    @admin.display(description="duration")
    def lasted(self, obj):
        text = human_seconds(obj.duration.total_seconds())
        return text if obj.resolved_at else f"{text} so far"

    @admin.display(description="acknowledged by", ordering="acknowledged_by")
    def acknowledged(self, obj):
        return obj.acknowledged_by or mark_safe('<span class="ob-muted">–</span>')

    @admin.display(description="resolved by")
    def resolved_by_name(self, obj):
        if not obj.resolved_at:
            return self.get_empty_value_display()
        return obj.resolved_by or "automatically (the condition cleared)"

    @admin.display(description="actions")
    def buttons(self, obj):
        """Acknowledge / Resolve, submitting this page's form (and its CSRF token) to their views."""
        if not obj.is_unresolved:
            return mark_safe('<span class="ob-muted">resolved: nothing to do</span>')
        back = reverse("admin:pipelines_incident_change", args=[obj.pk])
        out = []
        if obj.status == IncidentStatus.OPEN:
            out.append(
                format_html(
                    '<button type="submit" class="button" name="next" value="{}" formaction="{}">Acknowledge</button>',
                    back,
                    reverse("admin:incident_acknowledge", args=[obj.pk]),
                )
            )
        out.append(
            format_html(
                '<button type="submit" class="button" name="next" value="{}" formaction="{}">Resolve</button>',
                back,
                reverse("admin:incident_resolve", args=[obj.pk]),
            )
        )
        return mark_safe(" ".join(out))

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if not self.has_change_permission(request, obj):
            fields.remove("buttons")
        return fields

    def get_fieldsets(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return self.fieldsets
        first = [f for f in self.fieldsets[0][1]["fields"] if f != "buttons"]
        return ((None, {"fields": first}), *self.fieldsets[1:])

    def _transition(self, request, queryset, change, done_verb: str, rest_state: str) -> None:
        """Apply a compare-and-set change (acknowledge or resolve, which tell the channels) and report the counts."""
        who = request.user.get_username()
        # Only those of pipelines the user may change incidents on; the others count as not done.
        allowed = set(access.visible(request, queryset, access.ACKNOWLEDGE, "pipeline__").values_list("pk", flat=True))
        chosen = [i for i in queryset if i.pk in allowed]
        refused = queryset.count() - len(chosen)
        if refused:
            self.message_user(request, f"{refused} incident(s) are not yours to change: left as they were.")
        addr = request.META.get("REMOTE_ADDR")
        done = sum(1 for i in chosen if change(i, by=who, user=request.user, remote_addr=addr))
        rest = len(chosen) - done
        self.message_user(
            request,
            f"{done_verb} {done} incident(s)" + (f"; {plural(rest, 'was', 'were')} {rest_state}." if rest else "."),
            messages.SUCCESS if done else messages.WARNING,
        )

    @admin.action(description="Acknowledge", permissions=["change"])
    def acknowledge_incidents(self, request, queryset):
        self._transition(request, queryset, incidents.acknowledge, "Acknowledged", "not open")

    def has_silence_permission(self, request):
        return access.can(request, "pipelines.add_silence")

    def silence_for(self, request, queryset, hours: int):
        pairs = set(queryset.values_list("pipeline_id", "rule"))
        if len(pairs) != 1:
            self.message_user(
                request,
                "Choose incidents of one pipeline and one rule: a silence names one of each "
                "(or add a silence by hand under Silences).",
                messages.WARNING,
            )
            return None
        [(pipeline_id, rule)] = pairs
        query = urlencode({"pipeline": pipeline_id, "rule": rule, "hours": hours})
        return HttpResponseRedirect(f"{reverse('admin:pipelines_silence_add')}?{query}")

    @admin.action(description="Resolve", permissions=["change"])
    def resolve_incidents(self, request, queryset):
        self._transition(request, queryset, incidents.resolve, "Resolved", "already resolved")
