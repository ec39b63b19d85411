"""Email through Django's mail (EMAIL_URL): one or more addresses, a plain-text message."""

from __future__ import annotations

import re
import smtplib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email

from pipelines.alerting.channels.base import Channel, Result, short
from pipelines.alerting.messages import email_message
from pipelines.models import ChannelKind, Delivery, Incident, NotificationChannel

#: Mail servers are slower than webhooks (TLS, authentication): this is their timeout unless EMAIL_TIMEOUT says.
EMAIL_TIMEOUT = 20


def parse_addresses(target: str) -> list[str]:
    """Email addresses from a channel target: one per line, or separated by commas, semicolons or spaces."""
    return [a for a in re.split(r"[\s,;]+", target or "") if a]


def _is_email(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def send_email(addresses: list[str], payload: dict) -> Result:
    """Send through Django's mail (EMAIL_URL), with a timeout so a silent mail server cannot hold a worker."""
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or EMAIL_TIMEOUT
    try:
        connection = get_connection(fail_silently=False, timeout=timeout)
        sent = EmailMessage(
            payload["subject"], payload["body"], settings.DEFAULT_FROM_EMAIL, addresses, connection=connection
        ).send()
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(f"{a} ({code})" for a, (code, _) in exc.recipients.items())
        return Result(False, error=short(f"The mail server refused the recipients: {refused}."))
    except smtplib.SMTPResponseException as exc:
        message = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return Result(False, error=short(f"The mail server answered {exc.smtp_code}: {message}"))
    except (smtplib.SMTPException, OSError) as exc:
        host = getattr(settings, "EMAIL_HOST", "")
        return Result(False, error=short(f"Could not send mail via {host}: {str(exc) or type(exc).__name__}"))
    return Result(True) if sent else Result(False, error="The mail backend sent nothing.")


class EmailChannel(Channel):
    """Email through Django's mail (EMAIL_URL): one or more addresses (not secret: shown as they are)."""

    kind = ChannelKind.EMAIL

    def target_errors(self, target: str) -> list[str]:
        addresses = parse_addresses(target)
        if not addresses:
            return ["Enter at least one email address."]
        bad = [a for a in addresses if not _is_email(a)]
        return [f"Not a valid email address: {', '.join(bad)}."] if bad else []

    def render(self, doc: dict, incident: Incident | None) -> dict:
        return email_message(doc)

    def send(self, delivery: Delivery) -> Result:
        return send_email(parse_addresses(delivery.channel.target), delivery.payload)

    def mask(self, target: str) -> str:
        return target

    def short(self, target: str) -> str:
        text = ", ".join(parse_addresses(target))
        return text if len(text) <= 60 else text[:59] + "…"

    def secrets(self, channel: NotificationChannel) -> list[str]:
        return []
