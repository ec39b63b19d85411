"""Who may see the operator pages, and which part: each view checks the permission for the data it shows."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

VIEW_PIPELINE = "pipelines.view_pipeline"


def require_view(request) -> None:
    """Pipelines' health, history and configuration need the view permission on pipelines."""
    if not request.user.has_perm(VIEW_PIPELINE):
        raise PermissionDenied


def account_filter(value: str) -> int | None:
    """The overview's ?account= as an id, or None (all accounts) for anything that is not one."""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None
