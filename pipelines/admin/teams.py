"""Admin for teams: who is in each, what they may do, and which pipelines they own.

Capabilities are ticked, not typed; owned groups and tags are typed as on a pipeline (`payments,
search`; `team=money, tier`) and read with the one tag parser. Only users with the global team
permissions (the admin's `auth`-style model permissions on teams, never a team's own) see or edit teams:
a team cannot widen itself.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count

from pipelines import access
from pipelines.admin.support import ReadOnly
from pipelines.models import Capability, SsoIdentity, Team
from pipelines.registry import tags


def _tidy_groups(text: str) -> list[str]:
    try:
        return tags.parse_groups(text)
    except tags.TagError as exc:
        raise forms.ValidationError(str(exc)) from None


def _tidy_tags(text: str) -> list[str]:
    out = []
    for part in tags.parse_groups(text):  # the same splitting: commas or new lines
        try:
            out.append(tags.canonical_tag(part))
        except tags.TagError as exc:
            raise forms.ValidationError(str(exc)) from None
    return list(dict.fromkeys(out))


class TeamForm(forms.ModelForm):
    capabilities = forms.MultipleChoiceField(
        choices=Capability.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="What members may do on the pipelines this team owns.",
    )
    pipeline_groups = forms.CharField(
        label="Owned groups",
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Pipelines in these groups, comma-separated: payments, search.",
    )
    pipeline_tags = forms.CharField(
        label="Owned tags",
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Pipelines carrying any of these tags, comma-separated: team=money, tier (a key alone: any value).",
    )

    class Meta:
        model = Team
        fields = ("name", "description", "members", "capabilities", "all_pipelines", "pipelines")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        team = self.instance
        if team.pk:
            self.initial["pipeline_groups"] = ", ".join(team.pipeline_groups or [])
            self.initial["pipeline_tags"] = ", ".join(team.pipeline_tags or [])

    def clean_capabilities(self) -> list[str]:
        chosen = set(self.cleaned_data.get("capabilities") or [])
        return [c for c in Capability.values if c in chosen]  # in the table's order

    def clean_pipeline_groups(self) -> list[str]:
        return _tidy_groups(self.cleaned_data.get("pipeline_groups") or "")

    def clean_pipeline_tags(self) -> list[str]:
        return _tidy_tags(self.cleaned_data.get("pipeline_tags") or "")

    def save(self, commit=True):
        self.instance.pipeline_groups = self.cleaned_data["pipeline_groups"]
        self.instance.pipeline_tags = self.cleaned_data["pipeline_tags"]
        return super().save(commit)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = TeamForm
    list_display = ("name", "member_count", "capability_list", "owns", "description")
    search_fields = ("name", "description", "members__username")
    filter_horizontal = ("members",)
    autocomplete_fields = ("pipelines",)
    fieldsets = (
        (None, {"fields": ("name", "description", "members")}),
        ("What members may do", {"fields": ("capabilities",)}),
        (
            "Which pipelines",
            {
                "fields": ("all_pipelines", "pipelines", "pipeline_groups", "pipeline_tags"),
                "description": "A pipeline is the team's when it is named here, is in an owned group, or "
                "carries an owned tag; “owns every pipeline” makes it an operators' team.",
            },
        ),
    )

    def get_queryset(self, request):
        qs = super().get_queryset(request).annotate(n_members=Count("members", distinct=True))
        return qs.prefetch_related("pipelines")

    # Teams are edited with the global permissions alone (a team grants no permission on teams).
    def has_view_permission(self, request, obj=None):
        return access.is_global(request.user, "pipelines.view_team") or self.has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return access.is_global(request.user, "pipelines.change_team")

    def has_add_permission(self, request):
        return access.is_global(request.user, "pipelines.add_team")

    def has_delete_permission(self, request, obj=None):
        return access.is_global(request.user, "pipelines.delete_team")

    @admin.display(description="members", ordering="n_members")
    def member_count(self, obj):
        return obj.n_members

    @admin.display(description="may")
    def capability_list(self, obj):
        return ", ".join(Capability(c).value for c in obj.capabilities or []) or "–"

    @admin.display(description="owns")
    def owns(self, obj):
        if obj.all_pipelines:
            return "every pipeline"
        named = len(obj.pipelines.all())  # prefetched
        parts = [f"{named} pipeline(s)"] if named else []
        parts += [f"group {g}" for g in obj.pipeline_groups or []]
        parts += [f"tag {t}" for t in obj.pipeline_tags or []]
        return ", ".join(parts) or "nothing yet"


@admin.register(SsoIdentity)
class SsoIdentityAdmin(ReadOnly, admin.ModelAdmin):
    """Which identity-provider account each user signs in as. Deleting a row unlinks it: that account's
    next sign-in is then treated as a first one (refused while a user of its name exists, unless
    OIDC_LINK_EXISTING_USERS)."""

    deletable = True
    list_display = ("user", "subject", "issuer", "linked_at", "last_login_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "subject")
    list_filter = ("issuer",)
    ordering = ("user__username",)
