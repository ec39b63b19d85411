"""The admin login form, and what the login page shows, when single sign-on is on.

With LOCAL_PASSWORDS=false the form refuses any password before it is checked (so nothing is tried
against the database and no wrong-password count is kept), and the page shows only the sign-in button.
Management commands (`createsuperuser`, `changepassword`) are unaffected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from pipelines.sso import provider


def password_refusal() -> str:
    return f"Password login is turned off on this opsboard; use “Sign in with {settings.OIDC_PROVIDER_NAME}” instead."


class LoginForm(AdminAuthenticationForm):
    """The admin's login form, refusing passwords while LOCAL_PASSWORDS is false."""

    def clean(self):
        if not settings.LOCAL_PASSWORDS:
            raise ValidationError(password_refusal(), code="local_passwords_off")
        return super().clean()


def login_context(request) -> dict:
    """What templates/admin/login.html needs to show the single sign-on button."""
    return {
        "sso_enabled": settings.OIDC_ENABLED,
        "sso_provider_name": settings.OIDC_PROVIDER_NAME,
        "local_passwords": settings.LOCAL_PASSWORDS,
    }


def allow_provider_form_action(response):
    """Let the login page's sign-in form lead to the provider: the Content-Security-Policy's form-action
    (only 'self') also governs where the form's redirect may go, and the browser would stop it there."""
    if not settings.OIDC_ENABLED:
        return response
    try:
        parts = urlsplit(provider.endpoints().authorization)
    except provider.ProviderError:
        return response  # the button then ends on this page with the reason
    response._csp_update = {"form-action": [f"{parts.scheme}://{parts.netloc}"]}
    return response
