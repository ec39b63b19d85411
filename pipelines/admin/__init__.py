"""The admin is the operations UI: one module of ModelAdmin classes per concern, registered on import."""

from pipelines.admin import audit, channels, dlq, history, incidents, registry, silences, teams, tokens, trace, triage

__all__ = [
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
