"""Status choices shared across the product: one severity scale, and a pipeline's health built on it.

A rule finding, an incident and an insight have a `Severity`. A pipeline's `Health` is the worst
severity among its findings, or one of the states no rule judges (stale, OK, not synced yet,
disabled). Both enums take their colours from one palette, so "critical" looks the same everywhere.
"""

from __future__ import annotations

from django.db import models

#: One colour per status value, whichever enum carries it.
PALETTE = {
    "critical": "#d92d20",
    "warning": "#f79009",
    "info": "#2e90fa",
    "stale": "#7a5af8",
    "ok": "#12b76a",
    "pending": "#98a2b3",
    "disabled": "#667085",
}


class Severity(models.TextChoices):
    """How bad a finding, an incident or an insight is, worst first by `rank`."""

    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"

    @property
    def colour(self) -> str:
        return PALETTE[self.value]

    @property
    def rank(self) -> int:
        return ["critical", "warning", "info"].index(self.value)


class Health(models.TextChoices):
    """A pipeline's health, worst first by `rank`."""

    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    STALE = "stale", "Stale"
    OK = "ok", "OK"
    PENDING = "pending", "Not synced yet"
    DISABLED = "disabled", "Disabled"

    @property
    def colour(self) -> str:
        return PALETTE[self.value]

    @property
    def rank(self) -> int:
        return ["critical", "warning", "stale", "ok", "pending", "disabled"].index(self.value)

    @classmethod
    def of(cls, severity: str) -> Health:
        """The health a finding of this severity gives (an informational finding leaves it OK)."""
        return {Severity.CRITICAL: cls.CRITICAL, Severity.WARNING: cls.WARNING}.get(severity, cls.OK)

    @classmethod
    def worst(cls, values) -> Health:
        """The worst of these health values; OK when there are none."""
        return min(values, key=lambda h: h.rank, default=cls.OK)
