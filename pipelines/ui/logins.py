"""Logins and refused logins, written to the audit trail.

A login is recorded with how it was made: "password" for the login form, else the authentication
backend's `audit_method` (single sign-on names itself) or, failing that, its dotted path. A refused
login is recorded with the user name tried and nothing else of what was typed. A refusal without a
user name (a single sign-on callback that did not verify) is left to the backend that refused it,
which knows why.
"""

from __future__ import annotations

from django.contrib.auth import BACKEND_SESSION_KEY, user_logged_in, user_login_failed
from django.contrib.auth.backends import ModelBackend
from django.utils.module_loading import import_string

from pipelines.models import AuditAction, AuditEntry

PASSWORD = "password"
LOGIN_UID = "opsboard-audit-login"
LOGIN_FAILED_UID = "opsboard-audit-login-failed"


def _address(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def login_method(backend_path: str) -> str:
    """How a login was made, from the path of the backend that let the user in."""
    try:
        backend = import_string(backend_path)
    except ImportError:
        return backend_path or "unknown"
    if method := getattr(backend, "audit_method", ""):
        return method
    return PASSWORD if getattr(backend, "authenticate", None) is ModelBackend.authenticate else backend_path


def logged_in(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    backend = (session.get(BACKEND_SESSION_KEY) if session is not None else None) or getattr(user, "backend", "")
    AuditEntry.record(AuditAction.LOGIN, user, remote_addr=_address(request), method=login_method(backend))


def login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username") or "")
    if not username:
        return
    AuditEntry.record(AuditAction.LOGIN_FAILED, None, remote_addr=_address(request), username=username[:150])


def connect() -> None:
    """Listen for logins (pipelines.apps calls this once Django is ready)."""
    user_logged_in.connect(logged_in, dispatch_uid=LOGIN_UID)
    user_login_failed.connect(login_failed, dispatch_uid=LOGIN_FAILED_UID)
