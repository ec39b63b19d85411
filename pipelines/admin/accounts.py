"""Admin for AWS accounts: their role and endpoint (masked for anyone who cannot change them), and
importing an account's queues as pipelines."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path

from pipelines.admin.support import mask_url
from pipelines.models import AwsAccount
from pipelines.registry.discovery import DiscoveryError, import_queues
from pipelines.registry.forms import AwsAccountForm, ImportQueuesForm


@admin.register(AwsAccount)
class AwsAccountAdmin(admin.ModelAdmin):
    form = AwsAccountForm
    list_display = ("name", "region", "access", "endpoint_url", "pipeline_count")
    search_fields = ("name", "role_arn")
    list_filter = ("region",)
    readonly_fields = ("unsupported_statistics", "created_at")
    actions = ["import_queues_action"]
    # An endpoint typed without a scheme is read as https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    #: What a user who may not change an account sees instead of the field: the external ID is the
    #: shared secret of the role's trust policy, and an endpoint URL may carry credentials.
    MASKED = {"external_id": "external_id_masked", "endpoint_url": "endpoint_url_masked"}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_pipelines=Count("pipelines"))

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            return list(dict.fromkeys(self.MASKED.get(f, f) for f in fields))
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            return (*readonly, *self.MASKED.values())
        return readonly

    def get_list_display(self, request):
        if self.has_change_permission(request):
            return self.list_display
        return tuple(self.MASKED.get(f, f) for f in self.list_display)

    @admin.display(description="external ID")
    def external_id_masked(self, obj):
        return "set (hidden)" if obj.external_id else self.get_empty_value_display()

    @admin.display(description="endpoint URL")
    def endpoint_url_masked(self, obj):
        return mask_url(obj.endpoint_url) or self.get_empty_value_display()

    @admin.display(description="pipelines", ordering="_pipelines")
    def pipeline_count(self, obj):
        return obj._pipelines

    @admin.display(description="access")
    def access(self, obj):
        return f"assumes {obj.role_arn}" if obj.role_arn else "own credentials"

    def get_urls(self):
        return [
            path("<int:pk>/import/", self.admin_site.admin_view(self.import_view), name="pipelines_awsaccount_import"),
            *super().get_urls(),
        ]

    def import_view(self, request, pk):
        """List the account's queues and register those with a dead-letter queue, in one step."""
        account = get_object_or_404(AwsAccount, pk=pk)
        if not self.has_import_permission(request, account):
            return redirect("admin:index")
        form = ImportQueuesForm(request.POST or None)
        result = None
        if request.method == "POST" and form.is_valid():
            try:
                result = import_queues(
                    account,
                    form.cleaned_data["prefix"],
                    form.cleaned_data["dry_run"],
                    user=request.user,
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )
            except DiscoveryError as exc:
                form.add_error(None, str(exc))
            else:
                verb = "would register" if form.cleaned_data["dry_run"] else "registered"
                self.message_user(
                    request,
                    f"{account.name}: {verb} {len(result.created)} pipeline(s), "
                    f"skipped {len(result.skipped)} queue(s).",
                    messages.SUCCESS,
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import queues from {account}",
            "account": account,
            "form": form,
            "result": result,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/pipelines/awsaccount/import.html", context)

    def has_import_permission(self, request, account=None) -> bool:
        """Importing registers pipelines: it needs the right to add them as well as to change the account."""
        return self.has_change_permission(request, account) and request.user.has_perm("pipelines.add_pipeline")

    @admin.action(description="Import queues that have a dead-letter queue", permissions=["import"])
    def import_queues_action(self, request, queryset):
        if not self.has_import_permission(request):
            raise PermissionDenied
        for account in queryset:
            try:
                result = import_queues(account, user=request.user, remote_addr=request.META.get("REMOTE_ADDR"))
            except DiscoveryError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(
                request,
                f"{account.name}: registered {len(result.created)} pipeline(s), "
                f"skipped {len(result.skipped)} queue(s).",
                messages.SUCCESS,
            )
