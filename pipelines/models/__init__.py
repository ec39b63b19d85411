"""opsboard's data, one module per concern, all of it importable from `pipelines.models`.

Models hold data and lifecycle (compare-and-set transitions); they do not judge. Health is judged by
the rule table in `pipelines.alerting.rules`, and its findings are stored on the pipeline row.
"""

from pipelines.models.alerting import (
    UNRESOLVED,
    AlertRule,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Incident,
    IncidentStatus,
    NotificationChannel,
    NotifyEvent,
    RuleKind,
)
from pipelines.models.audit import AuditAction, AuditEntry, AuditThrough
from pipelines.models.dlq import (
    ACTIVE_REDRIVE_STATUSES,
    DRY_RUN_SAMPLE,
    DlqOperation,
    FilterKind,
    RedriveEngine,
    RedriveStatus,
    RedriveTask,
)
from pipelines.models.history import CycleKind, Lock, MetricFields, MetricRollup, MetricSample, PollCounter, PollCycle
from pipelines.models.registry import ApiKind, AwsAccount, Pipeline, validate_region
from pipelines.models.silences import MaintenanceWindow, Silence, SilenceState, Weekday, validate_time_zone
from pipelines.models.status import Health, Severity
from pipelines.models.teams import (
    CAPABILITY_PERMS,
    SCOPE_PERMS,
    TEAM_PERMS,
    ApiToken,
    Capability,
    SsoIdentity,
    Team,
    TokenScope,
    capabilities_granting,
)
from pipelines.models.trace import TraceLookup, TraceVerdict
from pipelines.models.triage import (
    ACTIVE_TRIAGE_STATUSES,
    GroupKind,
    TriageGroup,
    TriageMessage,
    TriageScan,
    TriageStatus,
)

__all__ = [
    "SsoIdentity",
    "CAPABILITY_PERMS",
    "SCOPE_PERMS",
    "TEAM_PERMS",
    "ApiToken",
    "Capability",
    "Team",
    "TokenScope",
    "capabilities_granting",
    "ACTIVE_REDRIVE_STATUSES",
    "ACTIVE_TRIAGE_STATUSES",
    "DRY_RUN_SAMPLE",
    "UNRESOLVED",
    "AlertRule",
    "ApiKind",
    "AuditAction",
    "AuditEntry",
    "AuditThrough",
    "AwsAccount",
    "ChannelKind",
    "CycleKind",
    "Delivery",
    "DeliveryStatus",
    "DlqOperation",
    "FilterKind",
    "GroupKind",
    "Health",
    "Incident",
    "IncidentStatus",
    "Lock",
    "MaintenanceWindow",
    "MetricFields",
    "MetricRollup",
    "MetricSample",
    "NotificationChannel",
    "NotifyEvent",
    "Pipeline",
    "PollCounter",
    "PollCycle",
    "RedriveEngine",
    "RedriveStatus",
    "RedriveTask",
    "RuleKind",
    "Severity",
    "Silence",
    "SilenceState",
    "TraceLookup",
    "TraceVerdict",
    "TriageGroup",
    "TriageMessage",
    "TriageScan",
    "TriageStatus",
    "Weekday",
    "validate_region",
    "validate_time_zone",
]
