"""Admin rows that belong to a pipeline, shown and changed only where the user's permissions reach.

Mixed into a ModelAdmin before `admin.ModelAdmin`: the change list, its search and filters, and any
autocomplete over the model read `get_queryset`, narrowed here to the pipelines on which the user may
view the model (`pipelines.access`); a row of a pipeline they may not view is not found. Viewing,
changing and deleting one object is checked on its pipeline; a row with no pipeline (an account-wide
silence, a lookup over every pipeline) only by the global role. A `pipeline` choice in a form lists the
pipelines on which the user may change the model.
"""

from __future__ import annotations

from django.contrib import admin

from pipelines import access
from pipelines.models import Pipeline


class PipelineScoped:
    #: The path from a row to its pipeline (empty for the Pipeline model itself).
    pipeline_path = "pipeline__"

    def perm(self, action: str) -> str:
        return f"{self.opts.app_label}.{action}_{self.opts.model_name}"

    def scope_perm(self, request) -> str:
        """The permission that narrows the list: view, or change for a global changer (change implies view)."""
        change = self.perm("change")
        return change if access.is_global(request.user, change) else self.perm("view")

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return access.visible(request, qs, self.scope_perm(request), self.pipeline_path)

    def pipeline_for(self, obj) -> Pipeline | None:
        return access.pipeline_of(obj)

    def holds(self, request, action: str, obj) -> bool:
        """Whether the user may do `action` (view, change, delete) on `obj`'s pipeline."""
        if obj is None:
            return True
        perms = [self.perm(action)] + ([self.perm("change")] if action == "view" else [])
        pipeline = self.pipeline_for(obj)
        if pipeline is None:
            return any(access.is_global(request.user, p) for p in perms)
        return any(access.can(request, p, pipeline) for p in perms)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.holds(request, "view", obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.holds(request, "change", obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.holds(request, "delete", obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Pipeline:
            # Only pipelines on which the user may make this change; no pipeline (account-wide) is the
            # global role's alone.
            perm = self.perm("change")
            kwargs["queryset"] = access.visible(request, Pipeline.objects.select_related("account"), perm)
            if not access.is_global(request.user, perm):
                kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


#: The pipeline filter of a scoped change list: only the pipelines its rows belong to (which the
#: narrowed queryset already limits), never every pipeline's name.
PIPELINE_FILTER = ("pipeline", admin.RelatedOnlyFieldListFilter)
