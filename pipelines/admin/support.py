"""Small pieces the admin modules share: a coloured badge for any status choice, and read-only
records (what opsboard writes for itself: cycles, DLQ tasks, lookups, deliveries)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.utils.html import format_html

#: A path segment plain enough to show: a short lower-case word, never an id or a token.
PLAIN_SEGMENT = re.compile(r"^[a-z][a-z_.-]{0,23}$")


def badge(choice) -> str:
    """A status as a coloured badge: any TextChoices value with a `colour` (Health, Severity, …)."""
    return format_html('<span class="ob-badge" style="background:{}">{}</span>', choice.colour, choice.label)


class ReadOnly:
    """For a ModelAdmin or inline of records nobody adds or edits; `deletable` records may be removed."""

    deletable = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)


def mask_url(url: str) -> str:
    """A URL with its secrets hidden, for those who may not change it: the scheme, the host and the path's
    first segment when it is a plain word; user-info, the rest of the path, the query and the fragment
    (where webhook tokens live, as in Slack's /services/T…/B…/secret or `?token=…`) become "…"."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return "…" if url else ""
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    segments = [s for s in parts.path.split("/") if s]
    if segments and PLAIN_SEGMENT.match(segments[0]):
        shown += f"/{segments[0]}"
        segments = segments[1:]
    hidden = segments or parts.query or parts.fragment or "@" in parts.netloc
    return f"{shown}/…" if hidden else shown


def error_text(text: str, limit: int = 80) -> str:
    """An error cut to `limit` characters for a list, the whole of it on hover; empty for none."""
    if not text:
        return ""
    return format_html(
        '<span class="ob-error" title="{}">{}</span>', text, text if len(text) <= limit else text[:limit] + "…"
    )
