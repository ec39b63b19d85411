"""The audit trail: who did what to which pipeline, from where, written by opsboard as it happens.

One row per audited act. `action` says what was done (one enum, grown as more acts are audited:
redrives, deletions, purges, acknowledgements, API calls), `through` how (the admin UI today), and
`detail` the act's own facts (queue URL, counts, errors) as plain JSON. Rows are never edited; the
user and pipeline names are copied so a row still reads right after either is deleted. Rows older
than `AUDIT_KEEP_DAYS` are dropped by the maintenance task.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.db import models

from pipelines import clock
from pipelines.models.registry import Pipeline


class AuditAction(models.TextChoices):
    """What an audited act was."""

    #: Messages received from a DLQ to show them on its page.
    DLQ_PEEK = "dlq_peek", "Peeked at a DLQ"
    #: A DLQ received whole (or in part) by a trace lookup looking for one request.
    TRACE_DLQ_SCAN = "trace_dlq_scan", "Scanned a DLQ for a trace"
    #: A DLQ received (up to a cap) to find the messages a search selects.
    DLQ_SEARCH = "dlq_search", "Searched a DLQ"
    #: A search's messages downloaded, bodies included.
    DLQ_EXPORT = "dlq_export", "Exported DLQ messages"
    #: A DLQ message's body edited and sent to the source queue (the original deleted once sent).
    DLQ_EDIT_RESEND = "dlq_edit_resend", "Edited and resent a DLQ message"
    #: A DLQ received whole (up to a cap) by a triage scan, to group its messages by failure.
    DLQ_TRIAGE_SCAN = "dlq_triage_scan", "Scanned a DLQ for triage"
    #: A redrive (or its dry run) started on a DLQ.
    DLQ_REDRIVE = "dlq_redrive", "Started a redrive"
    #: Chosen DLQ messages deleted.
    DLQ_DELETE = "dlq_delete", "Deleted DLQ messages"
    #: A whole DLQ purged.
    DLQ_PURGE = "dlq_purge", "Purged a DLQ"
    #: A running redrive, delete or purge cancelled.
    DLQ_CANCEL = "dlq_cancel", "Cancelled a DLQ task"
    #: A trace lookup run (it may show message bodies and log lines).
    TRACE_LOOKUP = "trace_lookup", "Looked up a trace"
    INCIDENT_ACKNOWLEDGE = "incident_ack", "Acknowledged an incident"
    INCIDENT_RESOLVE = "incident_resolve", "Resolved an incident"
    #: A pipeline registered from its queue URL (discovery ran).
    PIPELINE_REGISTER = "pipeline_register", "Registered a pipeline"
    #: Any object added, changed or deleted through the admin or the API (detail: model, object, fields).
    OBJECT_ADD = "object_add", "Added an object"
    OBJECT_CHANGE = "object_change", "Changed an object"
    OBJECT_DELETE = "object_delete", "Deleted an object"
    API_TOKEN_CREATE = "token_create", "Created an API token"
    API_TOKEN_REVOKE = "token_revoke", "Revoked an API token"
    #: A login (password or single sign-on) and a refused one.
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login_failed", "Failed to log in"


class AuditThrough(models.TextChoices):
    """How the act reached opsboard."""

    UI = "ui", "Admin UI"
    API = "api", "REST API"
    #: A management command or a worker acting for itself.
    SYSTEM = "system", "System"


def remote_address(value: str | None) -> str | None:
    """The connecting address as it is stored: REMOTE_ADDR only, IPv4-mapped IPv6 unwrapped; None when
    there is none (a Unix socket). Forwarding headers are not read: with no trusted-proxy setting
    they are whatever the client sent (the /metrics allow-list refuses them for the same reason)."""
    try:
        addr = ipaddress.ip_address((value or "").split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return str(addr.ipv4_mapped)
    return str(addr)


class AuditEntry(models.Model):
    """One audited act (read-only history)."""

    at = models.DateTimeField(default=clock.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    pipeline = models.ForeignKey(Pipeline, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    pipeline_name = models.CharField(max_length=100, blank=True, help_text="Kept when the pipeline is deleted.")
    detail = models.JSONField(default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(
        "remote address", null=True, blank=True, help_text="The connecting address (a proxy's, behind one)."
    )
    through = models.CharField(max_length=16, choices=AuditThrough.choices, default=AuditThrough.UI)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.username or 'a process'} ({self.pipeline_name or '–'})"

    @classmethod
    def record(
        cls,
        action: AuditAction,
        user,
        pipeline: Pipeline | None = None,
        *,
        remote_addr: str | None = None,
        through: AuditThrough = AuditThrough.UI,
        **detail: Any,
    ) -> AuditEntry:
        """Write one entry; `user` None (or anonymous) is a process acting for itself."""
        return cls.objects.create(
            user=user if getattr(user, "pk", None) else None,
            username=getattr(user, "username", "") or "",
            action=action,
            pipeline=pipeline,
            pipeline_name=pipeline.name if pipeline else "",
            detail=detail,
            remote_addr=remote_address(remote_addr),
            through=through,
        )

    @classmethod
    def record_object(
        cls,
        action: AuditAction,
        user,
        obj: models.Model,
        *,
        remote_addr: str | None = None,
        through: AuditThrough = AuditThrough.UI,
        **detail: Any,
    ) -> AuditEntry:
        """Write one OBJECT_ADD/CHANGE/DELETE (or another act on one object): its model, primary key and
        name, and its pipeline when it is one or belongs to one. `detail` carries field names, never values
        (a channel's key or a token's hash must not reach the trail)."""
        return cls.record(
            action,
            user,
            _pipeline_of(obj),
            remote_addr=remote_addr,
            through=through,
            model=obj._meta.label_lower,
            object=str(obj)[:200],
            object_id=str(obj.pk),
            **detail,
        )


def _pipeline_of(obj: models.Model) -> Pipeline | None:
    """The pipeline an object is, or hangs from by a `pipeline` foreign key (None when it has none)."""
    if isinstance(obj, Pipeline):
        return obj if obj.pk else None
    try:
        owner = getattr(obj, "pipeline", None)
    except models.ObjectDoesNotExist:  # its pipeline is gone already
        return None
    return owner if isinstance(owner, Pipeline) else None
