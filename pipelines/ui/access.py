"""Who may see the operator pages: each view checks the permission for the data it shows."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

VIEW_PIPELINE = "pipelines.view_pipeline"


def require_view(request) -> None:
    """Pipelines' health, history and configuration need the view permission on pipelines."""
    if not request.user.has_perm(VIEW_PIPELINE):
        raise PermissionDenied
