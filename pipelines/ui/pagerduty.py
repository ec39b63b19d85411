"""PagerDuty's v3 webhooks, at /integrations/pagerduty/<channel id>/: an incident acknowledged in
PagerDuty is acknowledged in opsboard too ("PagerDuty" in acknowledged by), so reminders stop.

The request must carry `X-PagerDuty-Signature` with a v1 HMAC-SHA256 of the raw body made with the
channel's secret (the webhook subscription's); anything else — no such PagerDuty channel, no secret
set, a disabled channel, no or a wrong signature — is refused with 401 and changes nothing. A signed
body that is not JSON is a 400. `incident.acknowledged` for an incident whose incident key is one
opsboard sent ("opsboard-incident-<id>") and that this channel pages acknowledges it through the same
function as the UI's button (200); any other event, an incident opsboard does not know, or one of a
pipeline the channel does not page, is ignored (204).
"""

from __future__ import annotations

import json
import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from pipelines.alerting.channels.pagerduty import incident_id, verify_webhook
from pipelines.alerting.deliveries import routed_channels
from pipelines.alerting.incidents import acknowledge
from pipelines.models import AuditThrough, ChannelKind, Incident, NotificationChannel, NotifyEvent

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-PagerDuty-Signature"
ACKNOWLEDGED = "incident.acknowledged"
#: Who an incident acknowledged from PagerDuty shows as acknowledged by.
BY = "PagerDuty"


def _event(body: bytes) -> dict | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    event = doc.get("event") if isinstance(doc, dict) else None
    return event if isinstance(event, dict) else {}


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = NotificationChannel.objects.filter(pk=channel_id, kind=ChannelKind.PAGERDUTY, enabled=True).first()
    secret = channel.signing_secret if channel is not None else ""
    if not verify_webhook(secret, request.body, request.headers.get(SIGNATURE_HEADER, "")):
        return HttpResponse("Bad or missing signature.", status=401, content_type="text/plain")
    event = _event(request.body)
    if event is None:
        return HttpResponse("The body is not JSON.", status=400, content_type="text/plain")
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    if event.get("event_type") != ACKNOWLEDGED or data.get("type", "incident") != "incident":
        return HttpResponse(status=204)
    pk = incident_id(str(data.get("incident_key") or ""))
    incident = Incident.objects.select_related("pipeline__account").filter(pk=pk).first() if pk else None
    # A channel's secret speaks for the incidents that channel pages, not for every pipeline's.
    if incident is None or channel.pk not in {c.pk for c in routed_channels(incident, NotifyEvent.ACKNOWLEDGED)}:
        return HttpResponse(status=204)
    # Audited as a process's act (no user), from PagerDuty's address.
    done = acknowledge(incident, by=BY, remote_addr=request.META.get("REMOTE_ADDR"), through=AuditThrough.SYSTEM)
    log.info("PagerDuty acknowledged incident %s via channel %s (%s)", pk, channel_id, "done" if done else "not open")
    return JsonResponse({"incident": pk, "acknowledged": done})
