"""The admin is the operations UI: one module of ModelAdmin classes per concern, registered on import."""

from pipelines.admin import channels, dlq, history, incidents, registry, trace

__all__ = ["channels", "dlq", "history", "incidents", "registry", "trace"]
