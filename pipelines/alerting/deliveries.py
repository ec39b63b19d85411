"""Deliveries: incident events queued per routed channel, sent once, retried with backoff.

The evaluator calls `enqueue(incident, event)` inside its transaction: it records one pending
Delivery per channel that routes the incident, with the message rendered right then (so it says what
was true when the incident opened, escalated or resolved), and asks a worker to send it once the
transaction commits. `deliver` claims a delivery with compare-and-set, so two workers never send it
twice, makes one attempt and records it. Failures are retried with exponential backoff by the beat
sweep (`deliver_due`) until ALERT_DELIVERY_ATTEMPTS. Sending never raises: a dead channel records
its error, and the other channels and the evaluation carry on.

Silences and maintenance windows (`silences.covering`) hold notifications: an opened, escalated or
reminder event of a covered incident makes no delivery but is recorded on the incident
(`held_event`, the most important one held: opened, then escalated, then a reminder; `held_since`).
An acknowledgement or a resolve goes to the channels only if they were told the incident opened: when
its opening is held, nobody heard of it, so nobody hears that it ended. `release_held` (run by the
beat sweep every minute) sends the held event of each incident whose silence has ended and that is
still open, once, by compare-and-set on the hold; an acknowledged or resolved incident's hold is
dropped without a message (someone is on it, or it is over).

A channel can be limited to pipelines (a list), to severities, to groups, to a tag and to teams: the
first two are matched in the database, groups and tag on the channels found, with registry/tags.py (the
one reader of tag selectors), teams with `access.team_owns` (a channel with teams takes only incidents
of pipelines one of them owns); the incident's pipeline is read only when a channel found has such a
selector, and the teams only when a channel found has some.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Prefetch, Q, Value
from django.db.models.functions import Coalesce

from pipelines import access, clock, jobs
from pipelines.alerting import silences
from pipelines.alerting.channels import always_resolving_kinds, kinds_for, render, send
from pipelines.alerting.messages import worst
from pipelines.models import (
    Delivery,
    DeliveryStatus,
    Incident,
    IncidentStatus,
    NotificationChannel,
    NotifyEvent,
    Severity,
    Team,
)
from pipelines.registry import tags

log = logging.getLogger(__name__)
#: A delivery in "sending" whose worker died becomes due again after this (next_attempt_at is the lease).
LEASE = timedelta(minutes=5)
MAX_BACKOFF_MINUTES = 60
#: The beat sweep starts no new send after this many seconds, well inside its 60 s slot.
SWEEP_SECONDS = 45
DUE = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
#: What a silence holds, most important first: when several are held, the first one is sent at its end.
HELD_EVENTS = (NotifyEvent.OPENED, NotifyEvent.ESCALATED, NotifyEvent.REMINDER)


def routed_channels(incident: Incident, event: str) -> list[NotificationChannel]:
    """Enabled channels that take this incident: its pipeline (or all), its severity, its pipeline's
    group and tag (or any), resolves if asked, of a kind that is told about this event (paging
    services: acknowledgements, no reminders).

    For a resolve or an acknowledgement the incident's worst severity counts, so a channel told about a
    critical incident hears that it ended even if it eased to a warning first. Paging services always
    hear a resolve (their own incident would stay open otherwise)."""
    ending = event in (NotifyEvent.RESOLVED, NotifyEvent.ACKNOWLEDGED)
    severity = worst(incident.severity, incident.peak_severity) if ending else incident.severity
    rank = Severity(severity).rank
    channels = NotificationChannel.objects.filter(
        Q(pipelines__isnull=True) | Q(pipelines=incident.pipeline_id),
        enabled=True,
        kind__in=kinds_for(event),
        min_severity__in=[s.value for s in Severity if s.rank >= rank],
    )
    if event == NotifyEvent.RESOLVED:
        channels = channels.filter(Q(send_resolved=True) | Q(kind__in=always_resolving_kinds()))
    with_teams = NotificationChannel.teams.through.objects.filter(notificationchannel_id=OuterRef("pk"))
    found = list(channels.distinct().annotate(_has_teams=Exists(with_teams)))
    if not any(c.groups or c.tag or c._has_teams for c in found):
        return found
    pipeline = incident.pipeline
    found = [c for c in found if takes(c, pipeline.group, pipeline.tags)]
    owners = _owners([c.pk for c in found if c._has_teams])
    return [c for c in found if c.pk not in owners or any(access.team_owns(t, pipeline) for t in owners[c.pk])]


def _owners(channel_ids: list[int]) -> dict[int, list[Team]]:
    """The teams of these channels, each with its pipelines (three queries; none without channels)."""
    if not channel_ids:
        return {}
    teams = Prefetch("teams", queryset=Team.objects.prefetch_related("pipelines"))
    found = NotificationChannel.objects.filter(pk__in=channel_ids).prefetch_related(teams)
    return {c.pk: list(c.teams.all()) for c in found}


def takes(channel: NotificationChannel, group: str, pipeline_tags: dict[str, str]) -> bool:
    """Whether the channel's group and tag selectors let a pipeline with this group and tags through.
    A selector that cannot be read (typed before a validation existed) lets nothing through: a
    narrowed channel must never page for everything."""
    try:
        return tags.matches(group, pipeline_tags, want_groups=tags.parse_groups(channel.groups), want_tag=channel.tag)
    except tags.TagError:
        log.warning("Channel %s has a group or tag selector that cannot be read; it takes no incident.", channel.pk)
        return False


def enqueue(incident: Incident, event: str) -> list[Delivery]:
    """Record a pending delivery per routed channel and have a worker send them after the commit.

    One query when no channel routes the incident. Never raises for a broker that is down: the
    deliveries stay pending and the beat sweep sends them. A silenced incident's opening, escalation
    or reminder is held instead (see the module's docstring)."""
    event = NotifyEvent(event)
    channels = routed_channels(incident, event)
    if not channels:
        return []
    at, rendered, deliveries = clock.now(), {}, []
    if event in HELD_EVENTS:
        if silences.covering(incident, at) is not None:
            hold(incident, event, at)
            return []
        held = Incident.objects.filter(pk=incident.pk).exclude(held_event="").values("held_event", "held_since")
        if held:
            # The silence ended and the sweep has not released its hold yet: release it now, so the
            # channels hear the held event (rendered as the incident is now) before anything after it.
            incident.held_event, incident.held_since = held[0]["held_event"], held[0]["held_since"]
            release(incident, at)
            return []
    if event in (NotifyEvent.ACKNOWLEDGED, NotifyEvent.RESOLVED) and never_told(incident):
        return []
    for channel in channels:
        if channel.kind not in rendered:
            rendered[channel.kind] = render(channel.kind, incident, event)
        deliveries.append(
            Delivery.objects.create(
                incident=incident,
                channel=channel,
                event=event,
                payload=rendered[channel.kind],
                created_at=at,
                next_attempt_at=at,
            )
        )
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: dispatch(ids), robust=True)
    return deliveries


def hold(incident: Incident, event: str, at: datetime) -> bool:
    """Record a held event on the incident unless a more important one is held already (one update)."""
    weaker = ["", *HELD_EVENTS[HELD_EVENTS.index(event) + 1 :]]
    held = Incident.objects.filter(pk=incident.pk, held_event__in=weaker).update(
        held_event=event, held_since=Coalesce(F("held_since"), Value(at))
    )
    if held:
        incident.held_event, incident.held_since = event, incident.held_since or at
    log.info("incident %s is silenced: its %s notification is held", incident.pk, event)
    return bool(held)


def never_told(incident: Incident) -> bool:
    """True when the incident's opening was held: no channel heard of it (read afresh, not from memory)."""
    return Incident.objects.filter(pk=incident.pk, held_event=NotifyEvent.OPENED).exists()


def release_held(at: datetime | None = None) -> int:
    """Send the held notification of each incident whose silence has ended. Returns how many were sent."""
    at = at or clock.now()
    sent = 0
    for incident in Incident.objects.exclude(held_event="").select_related("pipeline"):
        if silences.covering(incident, at) is None and release(incident, at):
            sent += 1
    return sent


def release(incident: Incident, at: datetime) -> bool:
    """End one incident's hold: if it is still open, send the held event, exactly once however many
    workers try (compare-and-set on the hold, in the transaction that queues the deliveries). True
    when this call sent it. An acknowledged or resolved incident's hold is just dropped."""
    held = Incident.objects.filter(pk=incident.pk, held_event=incident.held_event, held_since=incident.held_since)
    cleared = {"held_event": "", "held_since": None}
    with transaction.atomic():
        if held.filter(status=IncidentStatus.OPEN).update(
            **cleared, last_notified_at=at, notifications=F("notifications") + 1
        ):
            event = incident.held_event
            incident.refresh_from_db()
            enqueue(incident, event)
            return True
    held.exclude(status=IncidentStatus.OPEN).update(**cleared)
    return False


def dispatch(ids: Iterable[int]) -> None:
    """Hand deliveries to workers. A broker that refuses is logged; the sweep picks the rows up."""
    ids = list(ids)
    try:
        for pk in ids:
            jobs.submit(jobs.DELIVER_NOTIFICATION, pk)
    except Exception:  # any broker failure: the rows are pending and due, so nothing is lost
        log.warning("could not queue notification deliveries %s; the periodic sweep will send them", ids, exc_info=True)


def retry(deliveries) -> int:
    """Make pending or failed deliveries due now (each gets one more attempt) and queue them."""
    ids = list(
        deliveries.filter(status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED)).values_list("pk", flat=True)
    )
    count = Delivery.objects.filter(pk__in=ids, status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED)).update(
        status=DeliveryStatus.PENDING, next_attempt_at=clock.now()
    )
    if ids:
        transaction.on_commit(lambda: dispatch(ids), robust=True)
    return count


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: 1, 2, 4, 8, 16, 32, then 60 minutes."""
    return timedelta(minutes=min(2 ** (attempts - 1), MAX_BACKOFF_MINUTES))


def max_attempts(delivery: Delivery) -> int:
    # A test notification reports its one result to the operator who asked; it is not retried later.
    return 1 if delivery.event == NotifyEvent.TEST else settings.ALERT_DELIVERY_ATTEMPTS


def _claim(delivery_id: int) -> datetime | None:
    """Pending-and-due (or sending with an expired lease) → sending, in one compare-and-set update.
    Returns the lease, which also identifies this claim when the result is recorded."""
    at = clock.now()
    lease = at + LEASE
    claimed = Delivery.objects.filter(pk=delivery_id, status__in=DUE, next_attempt_at__lte=at).update(
        status=DeliveryStatus.SENDING, next_attempt_at=lease
    )
    return lease if claimed == 1 else None


def deliver(delivery_id: int) -> Delivery | None:
    """Make one attempt at a due delivery and record it. None when it was not due or another worker has it."""
    lease = _claim(delivery_id)
    if lease is None:
        return None
    delivery = Delivery.objects.select_related("channel").filter(pk=delivery_id).first()
    if delivery is None:  # its channel or incident was deleted meanwhile
        return None
    at, started = clock.now(), time.monotonic()
    result = send(delivery)
    attempt = {
        "at": at.isoformat(),
        "ok": result.ok,
        "status": result.status,
        "error": result.error,
        "ms": round((time.monotonic() - started) * 1000),
    }
    return _record(delivery, lease, attempt, result.final)


def _record(delivery: Delivery, lease: datetime, attempt: dict, final: bool) -> Delivery:
    d = delivery
    d.attempts = [*d.attempts, attempt]
    d.attempt_count += 1
    at = clock.now()
    if attempt["ok"]:
        d.status, d.sent_at, d.last_error, d.next_attempt_at = DeliveryStatus.SENT, at, "", at
    elif final or d.attempt_count >= max_attempts(d):
        d.status, d.last_error, d.next_attempt_at = DeliveryStatus.FAILED, attempt["error"], at
    else:
        d.status, d.last_error = DeliveryStatus.PENDING, attempt["error"]
        d.next_attempt_at = at + backoff(d.attempt_count)
    fields = {
        "status": d.status,
        "sent_at": d.sent_at,
        "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at,
        "attempts": d.attempts,
        "attempt_count": d.attempt_count,
    }
    # Only the holder of this claim records it: a send that outlived its lease was claimed again.
    if Delivery.objects.filter(pk=d.pk, status=DeliveryStatus.SENDING, next_attempt_at=lease).update(**fields) != 1:
        log.warning("delivery %s was claimed again while it was being sent; this attempt is not recorded", d.pk)
    if not attempt["ok"]:
        log.info("delivery %s to %s failed (attempt %d): %s", d.pk, d.channel, d.attempt_count, attempt["error"])
    return d


def deliver_due(limit: int = 100, budget: float = SWEEP_SECONDS) -> int:
    """Send what is due (new deliveries whose task was lost, retries, expired claims). Returns attempts made.

    A channel that cannot be reached is skipped for the rest of the sweep, so one dead endpoint
    does not spend the sweep's time on its timeouts while other channels wait."""
    started = time.monotonic()
    due = Delivery.objects.filter(status__in=DUE, next_attempt_at__lte=clock.now()).order_by("next_attempt_at", "pk")
    unreachable, attempted = set(), 0
    for pk, channel_id in due.values_list("pk", "channel_id")[:limit]:
        if time.monotonic() - started > budget:
            break
        if channel_id in unreachable:
            continue
        d = deliver(pk)
        if d is None:
            continue
        attempted += 1
        if d.status == DeliveryStatus.PENDING and d.attempts[-1]["status"] is None:  # no answer at all
            unreachable.add(channel_id)
    return attempted


def send_test(channel: NotificationChannel) -> Delivery:
    """Send a test notification to one channel now (even a disabled one) and return the recorded result."""
    delivery = Delivery.objects.create(
        channel=channel, event=NotifyEvent.TEST, payload=render(channel.kind, None, NotifyEvent.TEST, channel.name)
    )
    return deliver(delivery.pk) or Delivery.objects.get(pk=delivery.pk)
