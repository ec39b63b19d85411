"""Who may see the operator pages, and which part: each view checks the permission for the data it
shows, on the pipeline it shows (`pipelines.access`; a pipeline's own pages find it with
`pipelines.access.pages.pipeline_or_404`)."""

from __future__ import annotations

from pipelines import access
from pipelines.access.pages import require

VIEW_PIPELINE = access.VIEW


def require_view(request) -> None:
    """Pages that list pipelines need the view permission on at least one (then show only those)."""
    require(request, access.VIEW)


def account_filter(value: str) -> int | None:
    """The overview's ?account= as an id, or None (all accounts) for anything that is not one."""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None
