"""The opsboard user a verified single sign-on login stands for: found or created, then brought in line
with the provider's claims on every login.

* which user: the one linked to the provider's account (issuer and `sub`, `SsoIdentity`); a first
  login creates a user named by `preferred_username`, else `email`, with `is_staff` (the admin lets staff
  in) and no usable password, and links it. An existing opsboard user of that name is never taken
  over: the login is refused, unless OIDC_LINK_EXISTING_USERS links it (never a superuser, never one
  linked to another provider account);
* email and names: copied from the claims every time;
* teams: for each identity-provider group in OIDC_TEAM_MAP the user joins the mapped opsboard teams, and
  leaves the mapped teams none of their groups names any more; teams the map does not name are left alone;
* the global role: with OIDC_OPERATOR_GROUPS set, membership of the Django group "operator" follows
  those groups; with OIDC_SUPERUSER_GROUPS set, so does `is_superuser`. Unset, both are left to the admin.

A user created, linked, or whose role or teams changed, is written to the audit trail with the role
and teams before and after.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from pipelines import access, clock
from pipelines.models import AuditAction, AuditEntry, AuditThrough, SsoIdentity, Team

logger = logging.getLogger(__name__)

OPERATOR_GROUP = "operator"


class ClaimsRefused(Exception):
    """Claims that name no usable user; the message says what is missing, `reason` names it."""

    def __init__(self, message: str, reason: str = "no_username"):
        super().__init__(message)
        self.reason = reason


def groups_of(claims: dict) -> set[str]:
    """The identity-provider groups in the claim OIDC_GROUPS_CLAIM (a list, or one name)."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return set()
    return {str(g).strip() for g in value if str(g).strip()}


def username_of(claims: dict) -> str:
    for key in ("preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:150]
    raise ClaimsRefused(
        "the provider sent neither preferred_username nor email for this account; "
        "request the profile or email scope (OIDC_SCOPES) or add one of those claims."
    )


def _text(claims: dict, key: str, limit: int) -> str:
    value = claims.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _profile(user, claims: dict) -> None:
    user.email = _text(claims, "email", 254) or user.email
    user.first_name = _text(claims, "given_name", 150) or user.first_name
    user.last_name = _text(claims, "family_name", 150) or user.last_name


def sync_teams(user, groups: set[str]) -> None:
    """Join the teams the groups map to; leave the other mapped teams."""
    mapping = settings.OIDC_TEAM_MAP
    wanted = {team for group in groups & set(mapping) for team in mapping[group]}
    mapped = {team for teams in mapping.values() for team in teams}
    known = {t.name: t for t in Team.objects.filter(name__in=mapped)}
    for name in sorted(mapped - set(known)):
        logger.warning("OIDC_TEAM_MAP names the team %r, which does not exist in opsboard", name)
    current = set(user.opsboard_teams.filter(name__in=mapped).values_list("name", flat=True))
    user.opsboard_teams.add(*(known[n] for n in wanted - current if n in known))
    user.opsboard_teams.remove(*(known[n] for n in current - wanted))
    access.forget(user)


def _sync_superuser(user, groups: set[str]) -> None:
    if settings.OIDC_SUPERUSER_GROUPS:
        user.is_superuser = bool(groups & set(settings.OIDC_SUPERUSER_GROUPS))


def _sync_operator(user, groups: set[str]) -> None:
    if not settings.OIDC_OPERATOR_GROUPS:
        return
    operator = Group.objects.filter(name=OPERATOR_GROUP).first()
    if operator is None:
        logger.warning("OIDC_OPERATOR_GROUPS is set but the Django group %r does not exist", OPERATOR_GROUP)
    elif groups & set(settings.OIDC_OPERATOR_GROUPS):
        user.groups.add(operator)
    else:
        user.groups.remove(operator)


def _role(user) -> dict:
    """What single sign-on may change about a user's reach, for the audit trail."""
    return {
        "superuser": user.is_superuser,
        "operator": user.groups.filter(name=OPERATOR_GROUP).exists(),
        "teams": sorted(user.opsboard_teams.values_list("name", flat=True)),
    }


def _subject(claims: dict) -> str:
    value = claims.get("sub")
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise ClaimsRefused("the provider sent no usable subject (sub) for this account.", "missing_claim")
    return value


def _existing(User, username: str):
    """An opsboard user of this name that a first login may be linked to; refused unless allowed."""
    user = User.objects.filter(username=username).first()
    if user is None:
        return None
    if (
        settings.OIDC_LINK_EXISTING_USERS
        and not user.is_superuser
        and not SsoIdentity.objects.filter(user=user).exists()
    ):
        return user
    raise ClaimsRefused(
        f"an opsboard account named {username} already exists and is not linked to this identity provider "
        "account, so it is not signed in as it; an administrator may rename or delete that account "
        "(or set OIDC_LINK_EXISTING_USERS=true to link accounts by name at their first sign-in).",
        "account_exists",
    )


@transaction.atomic
def user_for(claims: dict, issuer: str, remote_addr: str | None = None):
    """The user the claims stand for, created (or linked) on first login and updated on every one."""
    User = get_user_model()
    subject = _subject(claims)
    groups = groups_of(claims)
    identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity is not None:
        user, before = identity.user, _role(identity.user)
    else:
        username = username_of(claims)
        user = _existing(User, username)
        before = _role(user) if user is not None else None
        if user is None:
            user = User(username=username, is_staff=True)
            user.set_unusable_password()
    created, linked = user.pk is None, identity is None
    _profile(user, claims)
    _sync_superuser(user, groups)
    user.save()
    if linked:
        identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    SsoIdentity.objects.filter(pk=identity.pk).update(last_login_at=clock.now())
    _sync_operator(user, groups)
    sync_teams(user, groups)
    after = _role(user)
    if created or linked or before != after:
        AuditEntry.record_object(
            AuditAction.OBJECT_ADD if created else AuditAction.OBJECT_CHANGE,
            None,  # the identity provider's say, not a person's
            user,
            remote_addr=remote_addr,
            through=AuditThrough.SYSTEM,
            method="oidc",
            linked=linked,
            before=before,
            after=after,
        )
    return user
