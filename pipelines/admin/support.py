"""Small pieces the admin modules share: a coloured badge for any status choice, and read-only
records (what opsboard writes for itself: cycles, DLQ tasks, lookups, deliveries)."""

from __future__ import annotations

from django.utils.html import format_html


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
