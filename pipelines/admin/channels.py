"""Admin for notification channels (with a test action) and their deliveries.

Secrets — webhook URLs, routing and API keys, signing secrets — are masked by each channel kind
(`channels.mask_target`, `channels.scrub`) for anyone who may not change the channel."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from pipelines import clock
from pipelines.admin.support import ReadOnly, badge, error_text
from pipelines.alerting import channels, deliveries
from pipelines.models import ChannelKind, Delivery, DeliveryStatus, NotificationChannel, NotifyEvent
from pipelines.registry import tags


class NotificationChannelForm(forms.ModelForm):
    """Checks the target fits the kind (an http(s) URL, valid addresses, a routing or API key) before
    anything is saved, and that where it leads does not resolve to an address the outbound policy refuses.
    A JSON webhook's secret left empty is generated on save (clearing it makes a new one)."""

    class Meta:
        model = NotificationChannel
        fields = "__all__"
        widgets = {
            "target": forms.Textarea(attrs={"rows": 3, "cols": 80}),
            "signing_secret": forms.TextInput(attrs={"size": 60, "autocomplete": "off"}),
        }

    def clean(self):
        cleaned = super().clean()
        kind, target = cleaned.get("kind"), cleaned.get("target")
        if kind and target is not None:
            cleaned["target"] = target.strip()
            problems = channels.target_errors(kind, cleaned["target"])
            for problem in problems or channels.address_errors(kind, cleaned["target"]):
                self.add_error("target", problem)
        if kind and kind not in (ChannelKind.WEBHOOK, ChannelKind.PAGERDUTY):
            cleaned["signing_secret"] = ""  # no other kind uses one: do not keep a stray secret
        return cleaned

    def clean_groups(self):
        """Stored as typed, tidied: `payments, search` (routing reads it with tags.parse_groups)."""
        try:
            return ", ".join(tags.parse_groups(self.cleaned_data.get("groups") or ""))
        except tags.TagError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_tag(self):
        try:
            return tags.canonical_tag(self.cleaned_data.get("tag") or "")
        except tags.TagError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = NotificationChannelForm
    list_display = (
        "name",
        "kind",
        "target_short",
        "enabled",
        "min_severity",
        "routing",
        "send_resolved",
        "last_delivery",
    )
    list_filter = ("kind", "enabled", "min_severity")
    # Webhook URLs carry their secret: searching them would let a view-only user guess it a piece at a
    # time, so only names (and email addresses, which are not secret) are searched; see get_search_results.
    search_fields = ("name",)
    filter_horizontal = ("pipelines", "teams")
    actions = ["send_test_action"]
    fields = (
        "name",
        "kind",
        "target",
        "signing_secret",
        "enabled",
        "min_severity",
        "send_resolved",
        "pipelines",
        "groups",
        "tag",
        "teams",
    )
    MASKED = {"target": "target_masked", "signing_secret": "secret_masked"}

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            fields = [self.MASKED.get(f, f) for f in fields]
        if obj is not None and obj.kind == ChannelKind.PAGERDUTY:
            secret = "secret_masked" if "secret_masked" in fields else "signing_secret"
            fields.insert(fields.index(secret) + 1, "inbound_url")
        return tuple(fields)

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "target_masked", "secret_masked", "inbound_url")

    @admin.display(description="target")
    def target_masked(self, obj):
        return channels.mask_target(obj.kind, obj.target)

    @admin.display(description="secret")
    def secret_masked(self, obj):
        return channels.mask_secret(obj.kind, obj.signing_secret) or "–"

    @admin.display(description="PagerDuty webhook URL")
    def inbound_url(self, obj):
        """Where a PagerDuty v3 webhook subscription sends incident.acknowledged (with the secret above)."""
        return settings.SITE_URL + reverse("pagerduty_webhook", args=[obj.pk])

    def get_search_results(self, request, queryset, search_term):
        terms = search_term.split()
        for term in terms:
            queryset = queryset.filter(Q(name__icontains=term) | Q(kind=ChannelKind.EMAIL, target__icontains=term))
        return queryset, False

    def get_queryset(self, request):
        latest = Delivery.objects.filter(channel=OuterRef("pk")).order_by("-created_at", "-pk")
        return (
            super()
            .get_queryset(request)
            .prefetch_related("teams")
            .annotate(
                _pipelines=Count("pipelines", distinct=True),
                _last_status=Subquery(latest.values("status")[:1]),
                _last_at=Subquery(latest.values("created_at")[:1]),
                _last_error=Subquery(latest.values("last_error")[:1]),
            )
        )

    @admin.display(description="target")
    def target_short(self, obj):
        return channels.short_target(obj.kind, obj.target)

    @admin.display(description="routing", ordering="_pipelines")
    def routing(self, obj):
        n = obj._pipelines
        parts = ["all pipelines" if not n else f"{n} pipeline{'s' if n != 1 else ''}"]
        if obj.groups:
            parts.append(f"group {obj.groups}")
        if obj.tag:
            parts.append(f"tag {obj.tag}")
        owners = [t.name for t in obj.teams.all()]
        if owners:
            parts.append(f"team{'s' if len(owners) != 1 else ''} {', '.join(owners)}")
        return " · ".join(parts)

    @admin.display(description="last delivery", ordering="_last_at")
    def last_delivery(self, obj):
        if not obj._last_status:
            return "none yet"
        when = f"{timesince(obj._last_at, clock.now())} ago"
        return format_html(
            '{} <small title="{}">{}</small>',
            badge(DeliveryStatus(obj._last_status)),
            channels.scrub(obj._last_error, obj),
            when,
        )

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test_action(self, request, queryset):
        sent = 0
        for channel in queryset:
            delivery = deliveries.send_test(channel)
            if delivery.status == DeliveryStatus.SENT:
                sent += 1
                self.message_user(request, f"{channel.name}: test notification sent.", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"{channel.name}: the test notification failed: {delivery.last_error}", messages.ERROR
                )
        failed = queryset.count() - sent
        if failed and sent:
            self.message_user(request, f"{sent} channel(s) worked, {failed} failed.", messages.WARNING)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnly, admin.ModelAdmin):
    """Every notification and each attempt at it; read-only, with an action to retry now."""

    list_display = ("created_at", "channel", "event", "incident_link", "status_tag", "attempt_count", "error_short")
    list_filter = ("status", "event", "channel")
    list_select_related = ("channel", "incident", "incident__pipeline")
    # The channel's URL is masked wherever a delivery repeats it, and an error that holds it is not searched:
    # a match would tell a piece of the secret. See get_search_results.
    search_fields = ("channel__name", "incident__pipeline__name")
    date_hierarchy = "created_at"
    actions = ["retry_now"]
    fields = (
        "created_at",
        "channel",
        "event",
        "incident_link",
        "status_tag",
        "attempt_count",
        "next_attempt_at",
        "sent_at",
        "last_error_shown",
        "attempts_table",
        "payload_pretty",
    )
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        for term in search_term.split():
            in_error = Q(last_error__icontains=term) & ~Q(last_error__contains=F("channel__target"))
            queryset = queryset.filter(
                Q(channel__name__icontains=term) | Q(incident__pipeline__name__icontains=term) | in_error
            )
        return queryset, False

    def has_retry_permission(self, request):
        return request.user.has_perm("pipelines.change_delivery")

    @admin.display(description="incident", ordering="incident")
    def incident_link(self, obj):
        if obj.incident is None:
            return "test" if obj.event == NotifyEvent.TEST else "–"
        try:
            url = reverse("admin:pipelines_incident_change", args=[obj.incident_id])
        except NoReverseMatch:
            return str(obj.incident)
        return format_html('<a href="{}">{}</a>', url, obj.incident)

    @admin.display(description="status", ordering="status")
    def status_tag(self, obj):
        return badge(DeliveryStatus(obj.status))

    @admin.display(description="last error")
    def error_short(self, obj):
        return error_text(channels.scrub(obj.last_error, obj.channel))

    @admin.display(description="last error")
    def last_error_shown(self, obj):
        return channels.scrub(obj.last_error, obj.channel)

    @admin.display(description="attempts")
    def attempts_table(self, obj):
        if not obj.attempts:
            return "none yet"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    a.get("at", "")[:19].replace("T", " "),
                    "ok" if a.get("ok") else "failed",
                    a.get("status") if a.get("status") is not None else "–",
                    f"{a.get('ms', 0)} ms",
                    channels.scrub(a.get("error", ""), obj.channel),
                )
                for a in obj.attempts
            ),
        )
        return format_html(
            "<table><thead><tr><th>at (UTC)</th><th>result</th><th>HTTP status</th>"
            "<th>took</th><th>error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return format_html(
            '<pre style="white-space:pre-wrap">{}</pre>',
            channels.scrub(json.dumps(obj.payload, indent=2, ensure_ascii=False), obj.channel),
        )

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request, queryset):
        count = deliveries.retry(queryset)
        self.message_user(
            request,
            f"{count} deliver{'y' if count == 1 else 'ies'} will be retried now "
            "(sent and in-progress ones are left alone).",
            messages.SUCCESS,
        )
