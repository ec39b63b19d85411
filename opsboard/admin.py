"""opsboard's admin site: the operations UI, with the pipeline overview as its landing page. Every
add, change and deletion made through it, on any model (opsboard's, users, groups), is written to the
audit trail."""

from django.contrib import admin
from django.urls import path

from pipelines.models import AuditAction, AuditEntry
from pipelines.sso import forms as sso_forms
from pipelines.ui import overview, urls


def changed_fields(message) -> dict:
    """The field names an admin change message lists, without any value or related object's name:
    `fields` of the object itself, `related` for its inlines ("added alert rule", "changed …: Threshold")."""
    if not isinstance(message, list):
        return {}
    fields, related = [], []
    for part in message:
        for verb, facts in part.items():
            if "name" in facts:
                names = ", ".join(str(f) for f in facts.get("fields", []))
                related.append(f"{verb} {facts['name']}" + (f": {names}" if names else ""))
            else:
                fields += [str(f) for f in facts.get("fields", [])]
    return {k: v for k, v in (("fields", fields), ("related", related)) if v}


class Audited:
    """Mixed into every ModelAdmin the site registers: its log_* hooks (which the admin calls once per
    object added, changed or deleted, with the request) also write the audit trail. A ModelAdmin may
    name its own addition (`audit_add_action`) and add facts of its objects (`audit_facts(obj)`)."""

    def _audit(self, request, action, obj, **detail):
        facts = getattr(self, "audit_facts", None)
        AuditEntry.record_object(
            action,
            request.user,
            obj,
            remote_addr=request.META.get("REMOTE_ADDR"),
            **(facts(obj) if facts else {}),
            **detail,
        )

    def log_addition(self, request, obj, message):
        logged = super().log_addition(request, obj, message)
        self._audit(request, getattr(self, "audit_add_action", AuditAction.OBJECT_ADD), obj, **changed_fields(message))
        return logged

    def log_change(self, request, obj, message):
        logged = super().log_change(request, obj, message)
        self._audit(request, AuditAction.OBJECT_CHANGE, obj, **changed_fields(message))
        return logged

    def log_deletions(self, request, queryset):
        # Called before the deletion, while each object still has its key and its pipeline.
        for obj in queryset:
            self._audit(request, AuditAction.OBJECT_DELETE, obj)
        return super().log_deletions(request, queryset)


class OpsboardAdminSite(admin.AdminSite):
    site_header = "opsboard"
    site_title = "opsboard"
    index_title = "Pipelines"
    login_form = sso_forms.LoginForm  # refuses passwords while LOCAL_PASSWORDS is false

    def login(self, request, extra_context=None):
        """The admin's login page, with the single sign-on button when it is configured."""
        response = super().login(request, {**sso_forms.login_context(request), **(extra_context or {})})
        return sso_forms.allow_provider_form_action(response)

    def register(self, model_or_iterable, admin_class=None, **options):
        """Register as usual, with the ModelAdmin made `Audited` (Django's and opsboard's alike)."""
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, Audited):
            admin_class = type(admin_class.__name__, (Audited, admin_class), {"__module__": admin_class.__module__})
        super().register(model_or_iterable, admin_class, **options)

    def get_urls(self):
        return [
            *urls.site_urls(self),
            path("apps/", self.admin_view(super().index), name="apps"),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        return overview.overview(request, self, extra_context)
