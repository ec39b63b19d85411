"""Small pieces the admin modules share: a coloured badge for any status choice, read-only records
(what opsboard writes for itself: cycles, DLQ tasks, lookups, deliveries), and a masked URL."""

from __future__ import annotations

from django.utils.html import format_html

# Masking lives with the channels (each kind masks its own secrets); URLs are masked the same everywhere.
from pipelines.alerting.channels import mask_url

__all__ = ["ReadOnly", "badge", "error_text", "mask_url"]


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


def error_text(text: str, limit: int = 80) -> str:
    """An error cut to `limit` characters for a list, the whole of it on hover; empty for none."""
    if not text:
        return ""
    return format_html(
        '<span class="ob-error" title="{}">{}</span>', text, text if len(text) <= limit else text[:limit] + "…"
    )
