"""Settings for the test suite: the project's own settings, with test-only environment defaults.

Credentials are dummies: every AWS call in the suite goes to the emulator on 127.0.0.1.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
# The emulator and the tests' webhook receivers listen on loopback, which the outbound address policy
# refuses by default; tests of the policy itself empty the list with override_settings.
os.environ.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8,::1")

from opsboard.settings import *  # noqa: F403

# Static files straight from the apps (no collectstatic step before tests).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
