"""Finding a pipeline (or a row of one) for a page, so that a page never reveals what it may not show.

A user who may view no pipeline at all is refused (403). One who may view some, asking for a pipeline
they may not view, gets a 404, as if it did not exist. One who may view it but not do what the page
does is refused (403).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from pipelines import access
from pipelines.models import Pipeline


def require(request, perm: str, obj=None) -> None:
    """403 unless the user holds `perm` (on `obj`'s pipeline; without one, on at least one pipeline)."""
    if not access.can(request, perm, obj):
        raise PermissionDenied


def pipeline_or_404(request, pk, perm: str = access.VIEW, qs: QuerySet | None = None) -> Pipeline:
    """The pipeline `pk` when the user may view it and holds `perm` on it (see the module's doc)."""
    require(request, access.VIEW)
    base = Pipeline.objects.select_related("account") if qs is None else qs
    pipeline = access.visible(request, base).filter(pk=pk).first()
    if pipeline is None:
        raise Http404("No such pipeline.")
    if perm != access.VIEW:
        require(request, perm, pipeline)
    return pipeline


def row_or_404(request, qs: QuerySet, pk, perm: str = access.VIEW) -> Model:
    """A row of a model with a `pipeline` foreign key, found and checked like `pipeline_or_404`."""
    require(request, access.VIEW)
    row = access.visible(request, qs, prefix="pipeline__").filter(pk=pk).first()
    if row is None:
        raise Http404("Not found.")
    if perm != access.VIEW:
        require(request, perm, row.pipeline)
    return row
