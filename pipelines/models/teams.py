"""Teams and what they may do on the pipelines they own; API tokens and their scopes.

A team is a set of users that owns pipelines: named one by one, by pipeline group, by tag, or all of
them (an operators' team). It grants its members capabilities on those pipelines only. A capability
is a bundle of the app's Django permissions (`Capability.PERMS`); the permission backend in
`pipelines.access` answers `user.has_perm(perm, pipeline)` from it.

Permissions given to a user or to a Django group in the admin (the built-in "operator" group among
them) hold on every pipeline: that is the global role. Superusers hold everything.

An API token belongs to one user, acts with that user's permissions narrowed to its scopes (the same
capabilities, plus registering pipelines), expires, and is stored only as a hash.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from pipelines import clock
from pipelines.models.registry import Pipeline


class Capability(models.TextChoices):
    """What a team may do on its pipelines, and what an API token may do for its user."""

    VIEW = "view", "View pipelines, history, incidents and alert rules"
    PEEK = "peek", "Peek at DLQ messages (attributes, ids)"
    BODIES = "bodies", "Read message bodies (DLQ, trace, export)"
    REDRIVE = "redrive", "Redrive a DLQ (and edit & resend)"
    DELETE = "delete", "Delete or purge DLQ messages"
    TRACE = "trace", "Look up request traces"
    ACKNOWLEDGE = "acknowledge", "Acknowledge and resolve incidents, silence alerts"
    MANAGE_RULES = "rules", "Manage alert rules"


#: The app permissions (codenames in `pipelines`) each capability grants.
CAPABILITY_PERMS: dict[str, frozenset[str]] = {
    Capability.VIEW: frozenset(
        {
            "view_pipeline",
            "view_incident",
            "view_alertrule",
            "view_silence",
            "view_redrivetask",
            "view_triagescan",
            "view_metricsample",
        }
    ),
    Capability.PEEK: frozenset({"peek_dlq"}),
    Capability.BODIES: frozenset({"view_message_bodies"}),
    Capability.REDRIVE: frozenset({"redrive_dlq"}),
    Capability.DELETE: frozenset({"delete_dlq_messages"}),
    Capability.TRACE: frozenset({"lookup_trace"}),
    Capability.ACKNOWLEDGE: frozenset({"change_incident", "add_silence", "change_silence"}),
    Capability.MANAGE_RULES: frozenset({"add_alertrule", "change_alertrule", "delete_alertrule"}),
}

#: Every permission a team can grant (anything else comes from the global role only).
TEAM_PERMS: frozenset[str] = frozenset().union(*CAPABILITY_PERMS.values())


def capabilities_granting(codename: str) -> set[str]:
    """The capabilities that grant the permission `codename` (none for one teams cannot grant)."""
    return {cap for cap, perms in CAPABILITY_PERMS.items() if codename in perms}


def validate_capabilities(value) -> None:
    known = set(Capability.values)
    if not isinstance(value, list) or any(v not in known for v in value):
        raise ValidationError(f"Capabilities are a list of: {', '.join(sorted(known))}.")


def _validate_str_list(value) -> None:
    if not isinstance(value, list) or any(not isinstance(v, str) or not v.strip() for v in value):
        raise ValidationError("A list of non-empty names.")


class Team(models.Model):
    """Users who own a set of pipelines and may do `capabilities` on them."""

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="opsboard_teams")
    capabilities = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_capabilities],
        help_text="What members may do on these pipelines.",
    )
    all_pipelines = models.BooleanField(
        "owns every pipeline", default=False, help_text="An operators' team: its capabilities hold on every pipeline."
    )
    pipelines = models.ManyToManyField(Pipeline, blank=True, related_name="teams", help_text="Owned one by one.")
    pipeline_groups = models.JSONField(
        "owned groups",
        default=list,
        blank=True,
        validators=[_validate_str_list],
        help_text="Pipelines in these groups.",
    )
    pipeline_tags = models.JSONField(
        "owned tags",
        default=list,
        blank=True,
        validators=[_validate_str_list],
        help_text="Pipelines carrying any of these tags (key or key=value).",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TokenScope(models.TextChoices):
    """What an API token may do: a capability, or registering pipelines (global `add_pipeline` only)."""

    VIEW = Capability.VIEW.value, Capability.VIEW.label
    PEEK = Capability.PEEK.value, Capability.PEEK.label
    BODIES = Capability.BODIES.value, Capability.BODIES.label
    REDRIVE = Capability.REDRIVE.value, Capability.REDRIVE.label
    DELETE = Capability.DELETE.value, Capability.DELETE.label
    TRACE = Capability.TRACE.value, Capability.TRACE.label
    ACKNOWLEDGE = Capability.ACKNOWLEDGE.value, Capability.ACKNOWLEDGE.label
    MANAGE_RULES = Capability.MANAGE_RULES.value, Capability.MANAGE_RULES.label
    REGISTER = "register", "Register pipelines"


SCOPE_PERMS: dict[str, frozenset[str]] = {**CAPABILITY_PERMS, TokenScope.REGISTER: frozenset({"add_pipeline"})}


def validate_scopes(value) -> None:
    known = set(TokenScope.values)
    if not isinstance(value, list) or not value or any(v not in known for v in value):
        raise ValidationError(f"Scopes are a non-empty list of: {', '.join(sorted(known))}.")


#: Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "obt_"


def hash_token(raw: str) -> str:
    """SHA-256 of the whole token: the secret part is 32 random bytes, so a slow hash adds nothing."""
    return hashlib.sha256(raw.encode()).hexdigest()


def default_expiry():
    return clock.now() + timedelta(days=90)


class ApiToken(models.Model):
    """A user's key to the REST API. Only its hash is kept; the token is shown once, when created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What uses it (a CI job, a script).")
    key_id = models.CharField(max_length=16, unique=True, editable=False, help_text="The token's public part.")
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, validators=[validate_scopes])
    created_at = models.DateTimeField(default=clock.now, editable=False)
    expires_at = models.DateTimeField(default=default_expiry)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_from = models.GenericIPAddressField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_PREFIX}{self.key_id}…)"

    @classmethod
    def issue(cls, user, name: str, scopes: list[str], expires_at=None) -> tuple[ApiToken, str]:
        """A new token for `user`: (the row, the token text to show once)."""
        key_id = secrets.token_hex(6)
        raw = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        token = cls(user=user, name=name, key_id=key_id, key_hash=hash_token(raw), scopes=list(scopes))
        if expires_at is not None:
            token.expires_at = expires_at
        token.full_clean(exclude=["user"])
        token.save()
        return token, raw

    @classmethod
    def find(cls, raw: str) -> ApiToken | None:
        """The live token `raw` is, or None (unknown, wrong secret, revoked or expired)."""
        if not raw.startswith(TOKEN_PREFIX):
            return None
        key_id = raw[len(TOKEN_PREFIX) :].partition("_")[0]
        token = cls.objects.select_related("user").filter(key_id=key_id).first()
        if token is None or not secrets.compare_digest(token.key_hash, hash_token(raw)):
            return None
        return token if token.is_live() else None

    def is_live(self) -> bool:
        return self.revoked_at is None and self.expires_at > clock.now() and self.user.is_active

    def revoke(self) -> bool:
        """Compare-and-set: True if this call revoked it."""
        changed = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=clock.now())
        if changed:
            self.refresh_from_db(fields=["revoked_at"])
        return bool(changed)

    def allows(self, perm: str) -> bool:
        """Whether the scopes cover the permission `perm` ("pipelines.codename"); the user's own
        permissions are checked separately."""
        app, _, codename = perm.partition(".")
        return app == "pipelines" and any(codename in SCOPE_PERMS.get(s, ()) for s in self.scopes)


class SsoIdentity(models.Model):
    """The identity provider's account (issuer and subject, which never change) an opsboard user signs in
    as. A single sign-on login finds its user by this link only, never by a name or an email the
    provider sends, so nobody takes over an existing account by taking its name at the provider."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    linked_at = models.DateTimeField(default=clock.now)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="uniq_sso_identity")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
