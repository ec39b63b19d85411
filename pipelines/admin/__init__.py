"""The admin is the operations UI: one module of ModelAdmin classes per concern, registered on import."""

from pipelines.admin import (
    accounts,
    audit,
    channels,
    dlq,
    history,
    incidents,
    registry,
    silences,
    teams,
    tokens,
    trace,
    triage,
)

__all__ = [
    "accounts",
    "audit",
    "channels",
    "dlq",
    "history",
    "incidents",
    "registry",
    "silences",
    "teams",
    "tokens",
    "trace",
    "triage",
]
