"""The page a login attempt gets while its user name and address are locked out (django-axes)."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render

from pipelines import formatting


def locked_out(request, original_response=None, credentials=None):
    """HTTP 429 with what happened and when logging in works again; never says whether the user exists."""
    return render(
        request,
        "admin/locked_out.html",
        {
            "title": "Too many failed logins",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cooloff": formatting.duration(int(settings.AXES_COOLOFF_TIME.total_seconds())),
        },
        status=429,
    )
