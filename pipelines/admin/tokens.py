"""Admin for API tokens: the list (user, scopes, expiry, last use, state), the add page that shows the
token once, and the "Revoke" action. Tokens are never edited or deleted (revoking keeps the history).

Any staff user manages their own tokens (a token can only narrow its user's permissions); a global
user-admin (superuser, or the global permission to change users) sees every token and may make one for
another user. Creating and revoking are written to the audit trail.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.html import format_html

from pipelines import clock
from pipelines.models import ApiToken, AuditAction, AuditEntry, TokenScope

DEFAULT_DAYS = 90
USER_ADMIN_PERM = "auth.change_user"


def is_user_admin(user) -> bool:
    return bool(user.is_active and (user.is_superuser or user.has_perm(USER_ADMIN_PERM)))


def state(token: ApiToken) -> tuple[str, str]:
    """(word, colour) for the list."""
    if token.revoked_at:
        return "revoked", "#98a2b3"
    if token.expires_at <= clock.now():
        return "expired", "#f79009"
    return "active", "#12b76a"


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it (a CI job, a script).")
    user = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True), required=False)
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="What it may do; never more than its user may.",
    )
    expires_on = forms.DateField(
        label="Expires on", help_text="At 00:00 UTC that day.", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        today = clock.now().date()
        self.max_date = today + timedelta(days=settings.API_TOKEN_MAX_DAYS)
        self.fields["expires_on"].initial = today + timedelta(days=min(DEFAULT_DAYS, settings.API_TOKEN_MAX_DAYS))
        self.fields[
            "expires_on"
        ].help_text = f"At 00:00 UTC that day; at most {settings.API_TOKEN_MAX_DAYS} days ahead."
        if is_user_admin(request.user):
            self.fields["user"].initial = request.user.pk
            self.fields["user"].help_text = "Whose permissions it acts with."
        else:
            del self.fields["user"]

    def clean_expires_on(self) -> date:
        day = self.cleaned_data["expires_on"]
        if day <= clock.now().date():
            raise forms.ValidationError("Choose a day after today.")
        if day > self.max_date:
            raise forms.ValidationError(
                f"At most {settings.API_TOKEN_MAX_DAYS} days ahead (API_TOKEN_MAX_DAYS): {self.max_date:%Y-%m-%d} or before."
            )
        return day

    def clean_user(self):
        user = self.cleaned_data.get("user")
        if user is not None and user.is_superuser and not self.request.user.is_superuser:
            raise forms.ValidationError("Only a superuser may make a token that acts as a superuser.")
        return user

    def owner(self):
        return self.cleaned_data.get("user") or self.request.user


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "scope_list", "expires_at", "last_used_at", "last_used_from", "state_badge")
    list_select_related = ("user",)
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "key_id")
    readonly_fields = (
        "name",
        "user",
        "key_id",
        "scopes",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "last_used_from",
    )
    fields = readonly_fields
    actions = ["revoke"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if is_user_admin(request.user) else qs.filter(user=request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (
            obj is None or obj.user_id == request.user.pk or is_user_admin(request.user)
        )

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return False  # a token is issued, used and revoked; never edited

    def has_delete_permission(self, request, obj=None):
        return False  # revoked tokens stay, with their last use

    def has_revoke_permission(self, request):
        return self.has_module_permission(request)

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes)

    @admin.display(description="state")
    def state_badge(self, obj):
        word, colour = state(obj)
        return format_html('<span class="ob-badge" style="background:{}">{}</span>', colour, word)

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        done = 0
        for token in queryset:
            if token.revoke():
                done += 1
                AuditEntry.record_object(
                    AuditAction.API_TOKEN_REVOKE,
                    request.user,
                    token,
                    remote_addr=request.META.get("REMOTE_ADDR"),
                    owner=token.user.get_username(),
                )
        rest = queryset.count() - done
        note = f"; {rest} were revoked already" if rest else ""
        self.message_user(request, f"Revoked {done} token(s){note}.", messages.SUCCESS if done else messages.WARNING)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = TokenForm(request.POST or None, request=request)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            expires = datetime.combine(d["expires_on"], datetime.min.time(), tzinfo=UTC)
            token, raw = ApiToken.issue(form.owner(), d["name"], d["scopes"], expires_at=expires)
            AuditEntry.record_object(
                AuditAction.API_TOKEN_CREATE,
                request.user,
                token,
                remote_addr=request.META.get("REMOTE_ADDR"),
                owner=token.user.get_username(),
                scopes=token.scopes,
                expires_at=token.expires_at.isoformat(),
            )
            return self._page(request, "created.html", "API token created", token=token, raw=raw)
        return self._page(request, "add.html", "Add API token", form=form)

    def _page(self, request, template: str, title: str, **context):
        ctx = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **context}
        return TemplateResponse(request, f"admin/pipelines/apitoken/{template}", ctx)
