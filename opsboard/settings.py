"""Settings for opsboard, read from the environment (and an optional .env file) with django-environ.

Every variable is documented in .env.example. With no variables set, opsboard runs on embedded
defaults: a SQLite file and a filesystem Celery broker under ./var, so nothing but Python is needed.
"""

import importlib.util
import ipaddress
import re
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from opsboard import settings_api, settings_sso

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("OPSBOARD_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")


def _env(getter, name, **kwargs):
    """Read one variable, turning a malformed value into a sentence that says what to set."""
    try:
        return getter(name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"The environment variable {name} is malformed ({exc}); fix or unset it.") from None


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _bool(name: str, default: bool) -> bool:
    """A strict boolean: a typo such as DEBUG=ture is an error, not a silent False."""
    raw = env.str(name, default=str(default)).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"The environment variable {name} is malformed ({raw!r}); use true or false.")


DEBUG = _bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set SECRET_KEY to a long random string (for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), "
            "or set DEBUG=true for a local, non-production run."
        )
    SECRET_KEY = "insecure-development-key-used-only-with-DEBUG-on-0123456789abcdef"

ALLOWED_HOSTS = _env(env.list, "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _env(env.list, "CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "opsboard.apps.OpsboardAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files for the API docs page, served locally (no CDN)
    "pipelines",
]
# The demo (emulator, simulator, `manage.py demo`) comes with the emulator extra; a production
# install without it never imports the demo app.
if importlib.util.find_spec("moto") is not None:
    INSTALLED_APPS.append("opsboard_demo")

MIDDLEWARE = [
    "pipelines.ui.healthz.HealthzMiddleware",  # before anything validates the Host header
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a lockout into the lockout page
]

ROOT_URLCONF = "opsboard.urls"
WSGI_APPLICATION = "opsboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
_DB_HELP = "use postgres://USER:PASSWORD@HOST:5432/NAME or sqlite:////absolute/path.sqlite3"
try:
    DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'opsboard.sqlite3'}")}
except (ImproperlyConfigured, ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Django can use ({exc}); {_DB_HELP}.") from None
if DATABASES["default"].get("ENGINE") not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL opsboard supports; {_DB_HELP}.")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and DATABASES["default"]["NAME"] != ":memory:":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DATABASES["default"].setdefault("CONN_MAX_AGE", _env(env.int, "CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks instead of failing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
else:
    # A server that accepts the connection and never completes it must not hold a request (or /healthz)
    # for long; `?connect_timeout=N` in DATABASE_URL overrides.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # A reused connection is checked before each request or task, so one dropped by a database restart
    # between cycles is replaced instead of failing the next cycle.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "opsboard.staticfiles.PackageFinder",  # front-end files shipped inside Python packages
]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "admin:login"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses logins while a lockout lasts
    "django.contrib.auth.backends.ModelBackend",
    "pipelines.sso.backend.OidcBackend",  # single sign-on's callback; answers nothing else
    "pipelines.access.TeamBackend",  # a team's capabilities on the pipelines it owns
]

# --- Security (production defaults; `manage.py check --deploy` is clean with DEBUG off) --------
SECURE_SSL_REDIRECT = _bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = _bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = _env(env.int, "SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = _bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if _bool("TRUST_X_FORWARDED_PROTO", default=not DEBUG):
    # Behind a TLS-terminating load balancer or reverse proxy.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts and styles only from opsboard's own static files (no inline script, no eval); inline style
# attributes are allowed because badges and charts colour themselves with them. Nothing may frame a page.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Login throttling: after LOGIN_FAILURE_LIMIT wrong passwords for one user name from one address, that
# pair is locked out for LOGIN_LOCKOUT_MINUTES (a lockout page, HTTP 429). A correct login resets the
# count; `manage.py axes_reset` lifts every lockout. The address is the connecting one (REMOTE_ADDR).
AXES_FAILURE_LIMIT = _env(env.int, "LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=_env(env.int, "LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "pipelines.ui.lockout.locked_out"
AXES_VERBOSE = False
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME <= timedelta(0):
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be positive whole numbers.")

# --- Single sign-on (OpenID Connect): OIDC_*, LOCAL_PASSWORDS; read in opsboard/settings_sso.py ----
vars().update(settings_sso.read(env, _env, _bool))

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded default: a directory queue, no broker server needed (one machine only), with
    # messages published atomically (see pipelines/broker.py).
    CELERY_BROKER_TRANSPORT = "opsboard.broker:Transport"
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = _bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# Locks that keep a slow cycle from running twice at once. Redis when there is one (the broker's
# Redis by default); otherwise a row in the database, with the same semantics.
LOCK_REDIS_URL = env.str(
    "LOCK_REDIS_URL", default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
)

# --- Collection -------------------------------------------------------------------------------
FAST_INTERVAL_SECONDS = _env(env.int, "FAST_INTERVAL_SECONDS", default=60)
METRICS_INTERVAL_SECONDS = _env(env.int, "METRICS_INTERVAL_SECONDS", default=300)
METRICS_OVERLAP_SECONDS = _env(env.int, "METRICS_OVERLAP_SECONDS", default=600)
COLLECT_CONCURRENCY = _env(env.int, "COLLECT_CONCURRENCY", default=16)
# The most pipelines one shard (one worker task) of a cycle holds; an account's pipelines are split
# into shards of this size or less, cut so each fills whole GetMetricData calls.
COLLECT_SHARD_PIPELINES = _env(env.int, "COLLECT_SHARD_PIPELINES", default=500)
RAW_RETENTION_DAYS = _env(env.int, "RAW_RETENTION_DAYS", default=15)
ROLLUP_RETENTION_DAYS = _env(env.int, "ROLLUP_RETENTION_DAYS", default=455)
# The audit trail keeps AUDIT_KEEP_DAYS days of entries (0: keep them forever); the maintenance task
# deletes older ones in batches. AUDIT_RETENTION_DAYS is its earlier name, still read when it is unset.
AUDIT_KEEP_DAYS = _env(env.int, "AUDIT_KEEP_DAYS", default=_env(env.int, "AUDIT_RETENTION_DAYS", default=365))
if AUDIT_KEEP_DAYS < 0:
    raise ImproperlyConfigured(
        "AUDIT_KEEP_DAYS must be a whole number of days (365 keeps a year of audit entries; 0 keeps them forever)."
    )
MAINTENANCE_BATCH_ROWS = _env(env.int, "MAINTENANCE_BATCH_ROWS", default=20000)
# Postgres keeps the minute rows in one partition per UTC day: maintenance creates today's and this
# many days ahead, and drops a day once it is wholly past RAW_RETENTION_DAYS, waiting at most
# PARTITION_LOCK_TIMEOUT_SECONDS for the table's lock (else the next run retries).
PARTITION_DAYS_AHEAD = _env(env.int, "PARTITION_DAYS_AHEAD", default=7)
PARTITION_LOCK_TIMEOUT_SECONDS = _env(env.int, "PARTITION_LOCK_TIMEOUT_SECONDS", default=5)
SQS_PRICE_PER_MILLION = _env(env.float, "SQS_PRICE_PER_MILLION", default=0.40)
CLOUDWATCH_PRICE_PER_THOUSAND_METRICS = _env(env.float, "CLOUDWATCH_PRICE_PER_THOUSAND_METRICS", default=0.01)
# What each pipeline costs in AWS: a price table of the same shape as pipelines/spend/prices.json
# replaces the shipped one (newer prices, more regions, negotiated rates).
SPEND_PRICES_FILE = _env(env.str, "SPEND_PRICES_FILE", default="")
if SPEND_PRICES_FILE and not Path(SPEND_PRICES_FILE).is_file():
    raise ImproperlyConfigured(
        f"SPEND_PRICES_FILE names {SPEND_PRICES_FILE!r}, which is not a file: give the path of a JSON price "
        "table shaped like pipelines/spend/prices.json, or unset it."
    )
for _name in (
    "FAST_INTERVAL_SECONDS",
    "METRICS_INTERVAL_SECONDS",
    "COLLECT_CONCURRENCY",
    "COLLECT_SHARD_PIPELINES",
    "RAW_RETENTION_DAYS",
    "PARTITION_DAYS_AHEAD",
    "PARTITION_LOCK_TIMEOUT_SECONDS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be a positive whole number.")

# The queue's AWS tag whose value becomes a pipeline's group when its group is empty (read at discovery);
# empty: groups are only set by hand.
PIPELINE_GROUP_TAG = env.str("PIPELINE_GROUP_TAG", default="team").strip()
if len(PIPELINE_GROUP_TAG) > 128 or any(c in PIPELINE_GROUP_TAG for c in "=,\n"):
    raise ImproperlyConfigured(
        f"PIPELINE_GROUP_TAG is {PIPELINE_GROUP_TAG[:140]!r}: name one AWS tag key (up to 128 characters, "
        "no = or comma), for example team, or leave it empty to set groups only by hand."
    )

# --- Alerts and integrations -----------------------------------------------------------------
ALERT_RENOTIFY_MINUTES = _env(env.int, "ALERT_RENOTIFY_MINUTES", default=60)
ALERT_DELIVERY_ATTEMPTS = _env(env.int, "ALERT_DELIVERY_ATTEMPTS", default=6)
ALERT_WEBHOOK_TIMEOUT = _env(env.float, "ALERT_WEBHOOK_TIMEOUT", default=5.0)
# PagerDuty channels send to the Events API v2; Opsgenie channels to the Alert API (US instance here,
# a channel whose key is written eu:KEY uses the EU one).
PAGERDUTY_EVENTS_URL = _env(env.str, "PAGERDUTY_EVENTS_URL", default="https://events.pagerduty.com/v2/enqueue")
OPSGENIE_API_URL = _env(env.str, "OPSGENIE_API_URL", default="https://api.opsgenie.com").rstrip("/")
# Email for notification channels: smtp+tls://user:password@host:587 (STARTTLS) or
# smtp+ssl://…:465; the default prints messages to the worker's log.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="opsboard <opsboard@localhost>")
# The address people reach opsboard at, for links in notifications.
SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
for _name in ("ALERT_RENOTIFY_MINUTES", "ALERT_DELIVERY_ATTEMPTS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be a positive whole number.")
# Service-level objectives (pipelines/slo/): the defaults a pipeline's own objectives override.
SLO_WINDOW_DAYS = _env(env.int, "SLO_WINDOW_DAYS", default=28)
SLO_FRESHNESS_TARGET = _env(env.float, "SLO_FRESHNESS_TARGET", default=99.5)
SLO_DLQ_MAX_PERCENT = _env(env.float, "SLO_DLQ_MAX_PERCENT", default=1.0)
if not 1 <= SLO_WINDOW_DAYS <= 90:
    raise ImproperlyConfigured("SLO_WINDOW_DAYS must be a whole number of days from 1 to 90.")
if not 50 <= SLO_FRESHNESS_TARGET < 100 or not 0 < SLO_DLQ_MAX_PERCENT <= 50:
    raise ImproperlyConfigured(
        "SLO_FRESHNESS_TARGET must be a percentage from 50 to below 100 (e.g. 99.5), and SLO_DLQ_MAX_PERCENT "
        "one above 0 and at most 50 (e.g. 1)."
    )
SLO_API_5XX_PERCENT = _env(env.float, "SLO_API_5XX_PERCENT", default=0.1)
SLO_API_LATENCY_MS = _env(env.int, "SLO_API_LATENCY_MS", default=1000)
if not 0 < SLO_API_5XX_PERCENT <= 50 or not 1 <= SLO_API_LATENCY_MS <= 60000:
    raise ImproperlyConfigured(
        "SLO_API_5XX_PERCENT must be a percentage above 0 and at most 50 (e.g. 0.1), and SLO_API_LATENCY_MS a "
        "whole number of milliseconds from 1 to 60000 (e.g. 1000)."
    )

# --- Trace ------------------------------------------------------------------------------------
# DLQ messages one trace lookup may examine, across all the DLQs it searches. Past it the page says
# the search was cut short and the verdict says whether the request is in the DLQ is unknown.
TRACE_DLQ_SCAN_MAX = _env(env.int, "TRACE_DLQ_SCAN_MAX", default=5000)
if TRACE_DLQ_SCAN_MAX < 1:
    raise ImproperlyConfigured("TRACE_DLQ_SCAN_MAX must be a positive whole number (DLQ messages per lookup).")

# --- DLQ search ------------------------------------------------------------------------------
# A search receives the DLQ to find the messages it selects: at most DLQ_SEARCH_MAX messages examined
# per search (each is received: its receive count goes up by one), and at most DLQ_EXPORT_MAX per
# export (its matches are held in memory while the download is built). Both stop after 15 seconds.
DLQ_SEARCH_MAX = _env(env.int, "DLQ_SEARCH_MAX", default=1000)
DLQ_EXPORT_MAX = _env(env.int, "DLQ_EXPORT_MAX", default=1000)
if not 1 <= DLQ_SEARCH_MAX <= 100_000 or not 1 <= DLQ_EXPORT_MAX <= 100_000:
    raise ImproperlyConfigured(
        "DLQ_SEARCH_MAX and DLQ_EXPORT_MAX must be whole numbers of messages from 1 to 100000 (e.g. 1000)."
    )

# --- DLQ triage -------------------------------------------------------------------------------
# A triage scan receives a whole DLQ (up to TRIAGE_SCAN_MAX messages, each received once, so its
# receive count goes up by one) for at most TRIAGE_SCAN_SECONDS, holding every message invisible
# until the scan ends; it then reads the consumer's error lines in time windows around the
# messages' send times (each window at most TRIAGE_WINDOW_MAX_SECONDS long) with at most
# TRIAGE_LOG_CALLS FilterLogEvents calls. The message rows of the newest TRIAGE_KEEP_SCANS scans per
# pipeline are kept; older scans keep only their groups.
TRIAGE_SCAN_MAX = _env(env.int, "TRIAGE_SCAN_MAX", default=10000)
TRIAGE_SCAN_SECONDS = _env(env.int, "TRIAGE_SCAN_SECONDS", default=900)
TRIAGE_KEEP_SCANS = _env(env.int, "TRIAGE_KEEP_SCANS", default=10)
TRIAGE_WINDOW_MAX_SECONDS = _env(env.int, "TRIAGE_WINDOW_MAX_SECONDS", default=6 * 3600)
TRIAGE_LOG_CALLS = _env(env.int, "TRIAGE_LOG_CALLS", default=200)
if not 1 <= TRIAGE_SCAN_MAX <= 100_000:
    raise ImproperlyConfigured("TRIAGE_SCAN_MAX must be a whole number of messages from 1 to 100000 (e.g. 10000).")
if not 60 <= TRIAGE_SCAN_SECONDS <= 6 * 3600:
    raise ImproperlyConfigured("TRIAGE_SCAN_SECONDS must be a whole number of seconds from 60 to 21600 (e.g. 900).")
if TRIAGE_KEEP_SCANS < 1:
    raise ImproperlyConfigured("TRIAGE_KEEP_SCANS must be a positive whole number (scans whose messages are kept).")
if not 60 <= TRIAGE_WINDOW_MAX_SECONDS <= 14 * 86400 or not 1 <= TRIAGE_LOG_CALLS <= 10_000:
    raise ImproperlyConfigured(
        "TRIAGE_WINDOW_MAX_SECONDS must be a whole number of seconds from 60 to 1209600 (e.g. 21600), and "
        "TRIAGE_LOG_CALLS a whole number of FilterLogEvents calls per scan from 1 to 10000 (e.g. 200)."
    )


def _networks(name: str, raw: str | None = None) -> tuple[str, ...]:
    """Comma-separated IP addresses and CIDR ranges (variable `name`, or `raw` when read already), each
    checked now rather than on the first request."""
    raw = env.str(name, default="") if raw is None else raw
    out = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            out.append(str(ipaddress.ip_network(item)))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} holds {item!r}, which is not an IP address or network ({exc}); use comma-separated "
                "addresses or CIDR ranges such as 10.0.0.0/8,192.168.1.5."
            ) from None
    return tuple(out)


# Prometheus /metrics: a bearer token and/or the client addresses allowed to scrape (matched against
# the connecting address). With neither set, nobody may scrape, so a fresh install leaks nothing; loopback
# is not trusted by default, since a reverse proxy on the same host connects from it.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured(
        "METRICS_TOKEN is too short; use at least 16 random characters (for example the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or unset it."
    )
METRICS_ALLOWED_IPS = _networks("METRICS_ALLOWED_IPS")
# Pipeline tags exported as tag_<key> labels of opsboard_pipeline_info: these keys, comma-separated;
# empty: the 20 keys most pipelines carry (pipelines/ui/prometheus.py).
METRICS_TAG_KEYS = tuple(
    dict.fromkeys(k.strip() for k in env.str("METRICS_TAG_KEYS", default="").split(",") if k.strip())
)
# Load balancers probe /healthz over plain HTTP, and Prometheus often scrapes inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

# --- REST API (/api/v1/, pipelines/api) ----------------------------------------------------------
# Each API token (or session user) may make API_RATE requests: "<n>/<sec|min|hour|day>". The counts
# live in the "api" cache, shared by every web process: Redis at CACHE_REDIS_URL (the locks' Redis by
# default), else this process's memory (one process only).
API_RATE = env.str("API_RATE", default="600/min").strip()
if not re.fullmatch(r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)", API_RATE):
    raise ImproperlyConfigured(f"API_RATE is {API_RATE[:40]!r}: write a number of requests per period, e.g. 600/min.")
# The longest an API token may live, in days (its form refuses a later expiry).
API_TOKEN_MAX_DAYS = _env(env.int, "API_TOKEN_MAX_DAYS", default=365)
if API_TOKEN_MAX_DAYS < 1:
    raise ImproperlyConfigured("API_TOKEN_MAX_DAYS must be a positive whole number of days (365: a year).")
CACHE_REDIS_URL = env.str("CACHE_REDIS_URL", default=LOCK_REDIS_URL)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_REDIS_URL, "KEY_PREFIX": "api"}
        if CACHE_REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api"}
    ),
}
# The REST framework and OpenAPI schema settings (no environment of their own): opsboard/settings_api.py.
REST_FRAMEWORK = settings_api.rest_framework(API_RATE)
SPECTACULAR_SETTINGS = settings_api.SPECTACULAR_SETTINGS

# --- AWS client behaviour (credentials come from boto3's own chain, never the database) ------
AWS_RETRY_MODE = env.str("AWS_RETRY_MODE", default="standard")
if AWS_RETRY_MODE not in ("legacy", "standard", "adaptive"):
    raise ImproperlyConfigured("AWS_RETRY_MODE must be one of legacy, standard or adaptive.")
AWS_MAX_ATTEMPTS = _env(env.int, "AWS_MAX_ATTEMPTS", default=3)
AWS_CONNECT_TIMEOUT = _env(env.float, "AWS_CONNECT_TIMEOUT", default=5.0)
AWS_READ_TIMEOUT = _env(env.float, "AWS_READ_TIMEOUT", default=20.0)

# --- Outbound address policy (webhooks, an account's endpoint URL; see pipelines/outbound.py) --
# opsboard refuses to connect to loopback, link-local (the metadata service), private, CGNAT,
# unique-local, multicast, unspecified and reserved addresses, checked on the address connected to.
# These comma-separated networks are let through anyway (an emulator, a receiver inside the network).
OUTBOUND_ALLOWED_NETWORKS = _networks("OUTBOUND_ALLOWED_NETWORKS", env.str("OUTBOUND_ALLOWED_NETWORKS", default=""))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"botocore": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

CELERY_BEAT_SCHEDULE = {
    "fast-cycle": {
        "task": "pipelines.tasks.fast_cycle",
        "schedule": float(FAST_INTERVAL_SECONDS),
        "options": {"expires": FAST_INTERVAL_SECONDS},
    },
    "metrics-cycle": {
        "task": "pipelines.tasks.metrics_cycle",
        "schedule": float(METRICS_INTERVAL_SECONDS),
        "options": {"expires": METRICS_INTERVAL_SECONDS},
    },
    "maintenance": {"task": "pipelines.tasks.maintenance", "schedule": 600.0, "options": {"expires": 600}},
    "alert-deliveries": {
        "task": "pipelines.tasks.deliver_due_notifications",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
}
