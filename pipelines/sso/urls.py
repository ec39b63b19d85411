"""Single sign-on's paths (under /oidc/, see `pipelines.ui.urls`). The callback is the redirect URI to
register at the provider: SITE_URL + /oidc/callback/. The names are the ones mozilla-django-oidc reverses."""

from __future__ import annotations

from django.urls import path

from pipelines.sso import views

urlpatterns = [
    path("oidc/authenticate/", views.Start.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", views.callback, name="oidc_authentication_callback"),
]
