"""Admin for silences (list by state, add with clear errors, "Expire now") and maintenance windows.

Adding or changing either needs the model permissions (`pipelines.add_silence`, …); a user with only
the view permission sees them read-only. A team member sees, adds and changes the silences of their
team's pipelines (ACKNOWLEDGE); account-wide silences are the global role's (`admin.scoping`).
Every change is a POST (admin forms and actions).
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Count

from pipelines import access, clock
from pipelines.admin.scoping import PipelineScoped
from pipelines.admin.support import badge
from pipelines.alerting import silences
from pipelines.alerting.silence_forms import SilenceForm
from pipelines.formatting import plural
from pipelines.models import MaintenanceWindow, Silence, SilenceState, Weekday

DEFAULT_LENGTH = timedelta(hours=1)
MAX_HOURS = 24 * 366


class SilenceStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return SilenceState.choices

    def queryset(self, request, queryset):
        at = clock.now()
        if self.value() == SilenceState.ACTIVE:
            return queryset.filter(starts_at__lte=at, ends_at__gt=at)
        if self.value() == SilenceState.UPCOMING:
            return queryset.filter(starts_at__gt=at)
        if self.value() == SilenceState.EXPIRED:
            return queryset.filter(ends_at__lte=at)
        return queryset


@admin.register(Silence)
class SilenceAdmin(PipelineScoped, admin.ModelAdmin):
    form = SilenceForm
    list_display = ("number", "covers", "state_badge", "starts_at", "ends_at", "reason", "created_by")
    list_display_links = ("number",)
    # Related-only: the filters name only accounts and pipelines of silences the user may see.
    list_filter = (
        SilenceStateFilter,
        "rule",
        ("account", admin.RelatedOnlyFieldListFilter),
        ("pipeline", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("pipeline", "account")
    search_fields = ("reason", "created_by", "pipeline__name")
    readonly_fields = ("created_by", "created_at")
    actions = ["expire_now"]

    def get_changeform_initial_data(self, request):
        """A start now and an end an hour on, or `?hours=4` on (the incident list's "Silence for" actions
        come here with the pipeline and rule filled in: the operator gives the reason and saves)."""
        at = clock.now().replace(second=0, microsecond=0)
        initial = super().get_changeform_initial_data(request)
        hours = str(initial.pop("hours", ""))
        length = timedelta(hours=int(hours)) if hours.isdigit() and 0 < int(hours) <= MAX_HOURS else DEFAULT_LENGTH
        return {**initial, "starts_at": at, "ends_at": at + length}

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    @admin.display(description="#", ordering="pk")
    def number(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="covers")
    def covers(self, obj):
        return obj.matchers

    @admin.display(description="state")
    def state_badge(self, obj):
        return badge(obj.state())

    @admin.action(description="Expire now", permissions=["change"])
    def expire_now(self, request, queryset):
        at = clock.now()
        # Only silences the user may change (on their pipelines; account-wide ones: the global role).
        chosen = list(access.visible(request, queryset, "pipelines.change_silence", "pipeline__"))
        refused = queryset.count() - len(chosen)
        if refused:
            self.message_user(request, f"{refused} silence(s) are not yours to change: left as they were.")
        done = 0
        for silence in chosen:
            if silence.expire(at):
                done += 1
                self.log_change(request, silence, [{"changed": {"fields": ["Ends at"]}}])
        rest = len(chosen) - done
        note = f"; {plural(rest, 'was', 'were')} over already" if rest else ""
        self.message_user(
            request,
            f"Expired {done} silence(s){note}. Held notifications of incidents still open go out within a minute.",
            messages.SUCCESS if done else messages.WARNING,
        )


class MaintenanceWindowForm(forms.ModelForm):
    weekdays = forms.TypedMultipleChoiceField(
        choices=Weekday.choices,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one weekday."},
    )

    class Meta:
        model = MaintenanceWindow
        fields = ("name", "pipelines", "weekdays", "start_time", "duration_minutes", "time_zone", "reason", "enabled")
        error_messages = {"reason": {"required": "Give a reason: it shows on every incident the window covers."}}


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    form = MaintenanceWindowForm
    list_display = ("name", "schedule", "pipeline_count", "now_state", "enabled", "reason")
    list_filter = ("enabled",)
    search_fields = ("name", "reason")
    filter_horizontal = ("pipelines",)
    readonly_fields = ("created_by", "created_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_pipelines=Count("pipelines"))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    def _read_only(self, request, obj) -> bool:
        return obj is not None and not self.has_change_permission(request, obj)

    def get_fields(self, request, obj=None):
        # A read-only page shows the schedule in words rather than the stored list of weekday numbers.
        fields = [f for f in super().get_fields(request, obj) if f != "schedule"]
        return ["schedule" if f == "weekdays" else f for f in fields] if self._read_only(request, obj) else fields

    def get_readonly_fields(self, request, obj=None):
        extra = ("schedule",) if self._read_only(request, obj) else ()
        return (*super().get_readonly_fields(request, obj), *extra)

    @admin.display(description="pipelines", ordering="_pipelines")
    def pipeline_count(self, obj):
        return obj._pipelines

    @admin.display(description="now")
    def now_state(self, obj):
        span = silences.occurrence(obj, clock.now()) if obj.enabled else None
        return f"in effect until {span[1]:%H:%M} UTC" if span else "–"
