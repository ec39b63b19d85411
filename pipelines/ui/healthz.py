"""The `/healthz` check for load balancers and uptime checks.

It answers 200 or 503 with a JSON body saying which of its checks failed: the database
(SELECT 1), the Celery broker (a connection with a short timeout, or the embedded broker's
folders), and collection (a fast cycle finished recently). It is open to anyone, so it says what
failed but not why beyond the exception's class; the details go to the log. A check that fails
in an unexpected way is reported as failed, never as a 500.

Every check is bounded in time, not only its connecting: a server that accepts the connection and
never answers would otherwise hold the web worker, and an unauthenticated caller could starve the
site with a few probes. The database runs under a statement timeout (Postgres) or a deadline
(SQLite); the broker check runs in a thread the request waits for at most BROKER_TIMEOUT, with
socket timeouts on the connection itself so that thread ends too.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port, validate_host
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from kombu import Connection

from pipelines import clock
from pipelines.models import CycleKind, Pipeline, PollCycle

log = logging.getLogger(__name__)

BROKER_TIMEOUT = 2.0  # seconds: a load balancer's probe times out after a few
DATABASE_TIMEOUT = 2.0  # seconds, per statement


class CheckTimeout(Exception):
    """A check did not answer within its bound."""


@contextmanager
def bounded_database(alias: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run the block's queries under DATABASE_TIMEOUT: a locked table or a stalled server fails the
    check instead of holding the request."""
    connection = connections[alias]
    ms = max(1, int(DATABASE_TIMEOUT * 1000))
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with transaction.atomic(using=alias):  # SET LOCAL lasts until this transaction ends
            with connection.connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {ms}")
            yield
        return
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        raw = connection.connection
        busy_ms = int(1000 * connection.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        deadline = time.monotonic() + DATABASE_TIMEOUT
        raw.execute(f"PRAGMA busy_timeout = {ms}")  # waiting for another writer's lock
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)  # a long statement
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)
            raw.execute(f"PRAGMA busy_timeout = {busy_ms}")
        return
    yield


def check_database() -> tuple[bool, dict[str, Any]]:
    with bounded_database(), connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return True, {}


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].split("+")[0].lower() if "://" in url else ""


def check_broker() -> tuple[bool, dict[str, Any]]:
    """Can tasks be queued: a broker connection, or for the embedded broker, its folders."""
    url = settings.CELERY_BROKER_URL
    scheme = _scheme(url)
    if scheme == "filesystem":
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
        folders = sorted({str(v) for k, v in options.items() if "folder" in k and v})
        bad = [f for f in folders if not (os.path.isdir(f) and os.access(f, os.W_OK | os.X_OK))]
        if not folders or bad:
            log.warning("healthz: broker folders missing or not writable: %s", bad or "none configured")
            return False, {"transport": scheme, "error": "the broker's folders are missing or not writable"}
        return True, {"transport": scheme}
    _within(BROKER_TIMEOUT, _connect_broker, url)
    return True, {"transport": scheme}


def _connect_broker(url: str) -> None:
    # Socket timeouts bound reads as well as connecting, so a broker that accepts the connection and
    # then says nothing releases this thread too (Redis: socket_timeout; AMQP: read/write_timeout).
    options = {
        "socket_timeout": BROKER_TIMEOUT,
        "socket_connect_timeout": BROKER_TIMEOUT,
        "read_timeout": BROKER_TIMEOUT,
        "write_timeout": BROKER_TIMEOUT,
        "max_retries": 0,
    }
    with Connection(url, connect_timeout=BROKER_TIMEOUT, transport_options=options) as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT)  # one attempt: a probe must answer fast
        conn.default_channel  # noqa: B018 - opening a channel is a round trip the broker must answer


def _within(seconds: float, func: Callable[..., Any], *args: Any) -> Any:
    """func(*args) in a daemon thread, waited for at most `seconds`: whatever a client library does
    with its own timeouts, the request gets its answer in time."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = func(*args)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="healthz-check", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise CheckTimeout(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def check_collection(at: datetime) -> tuple[bool, dict[str, Any]]:
    """A fast cycle finished within three poll intervals (when there is anything to poll)."""
    with bounded_database():
        return _collection(at)


def _collection(at: datetime) -> tuple[bool, dict[str, Any]]:
    stats = Pipeline.objects.filter(enabled=True).aggregate(pipelines=Count("pk"), shortest=Min("poll_interval"))
    if not stats["pipelines"]:
        return True, {"detail": "no pipelines"}
    # A fast cycle that finds no pipeline due records nothing, so the limit follows the shortest interval.
    max_age = 3 * max(settings.FAST_INTERVAL_SECONDS, stats["shortest"])
    last = (
        PollCycle.objects.filter(kind=CycleKind.FAST, finished_at__isnull=False)
        .order_by("-started_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    if last is None:
        return False, {"detail": "no fast cycle has finished yet", "max_age_seconds": max_age}
    age = max(0.0, (at - last).total_seconds())
    info: dict[str, Any] = {"last_fast_cycle_age_seconds": round(age), "max_age_seconds": max_age}
    if age > max_age:
        info["detail"] = "the last fast cycle is too old: are the Celery worker and beat running?"
    return age <= max_age, info


CHECKS = ("database", "broker", "collection")


def _run(name: str, check: Callable[..., tuple[bool, dict[str, Any]]], *args: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        ok, info = check(*args)
    except Exception as exc:
        log.warning("healthz: the %s check failed: %s: %s", name, type(exc).__name__, exc)
        ok, info = False, {"error": type(exc).__name__}
    return {"status": "ok" if ok else "fail", **info, "ms": round(1000 * (time.monotonic() - started), 1)}


def run_checks(names: tuple[str, ...] = CHECKS, at: datetime | None = None) -> dict[str, Any]:
    """The /healthz body: every chosen check's result and the overall status."""
    at = at or clock.now()
    results: dict[str, dict[str, Any]] = {}
    if "database" in names:
        results["database"] = _run("database", check_database)
    if "broker" in names:
        results["broker"] = _run("broker", check_broker)
    if "collection" in names:
        if results.get("database", {}).get("status") == "fail":
            results["collection"] = {"status": "fail", "detail": "not checked: the database is unavailable"}
        else:
            results["collection"] = _run("collection", check_collection, at)
    ok = all(r["status"] == "ok" for r in results.values())
    return {"status": "ok" if ok else "fail", "checks": results}


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, 503 otherwise. `?checks=database,broker` runs only those."""
    raw = request.GET.get("checks", "")
    names = tuple(n.strip() for n in raw.split(",") if n.strip()) if raw else CHECKS
    unknown = [n for n in names if n not in CHECKS]
    if unknown or not names:
        return JsonResponse(
            {
                "status": "fail",
                "error": f"unknown check {', '.join(unknown) or '(none)'}; choose from {', '.join(CHECKS)}",
            },
            status=400,
        )
    body = run_checks(names)
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


def probe_host_allowed(request: HttpRequest) -> bool:
    """A probe may address the instance by an IP address (which ALLOWED_HOSTS rightly does not list)
    or by a name ALLOWED_HOSTS lists; any other name gets Django's usual 400, as on every other page,
    so a name pointed at the instance by someone else (DNS rebinding) does not reach the checks."""
    raw = request.META.get("HTTP_HOST", "")
    if not raw:
        return True  # an HTTP/1.0 probe sends none
    domain, _port = split_domain_port(raw)
    if not domain:
        return False
    try:
        ipaddress.ip_address(domain[1:-1] if domain.startswith("[") else domain)
        return True
    except ValueError:
        pass
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return validate_host(domain, allowed)


class HealthzMiddleware:
    """Answers /healthz before Django validates the Host header: load balancers probe instances by
    their address, which ALLOWED_HOSTS rightly does not list, and the probe must still get its answer.
    A host name must still be one ALLOWED_HOSTS lists; others fall through to the usual 400."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == "/healthz" and probe_host_allowed(request):
            return healthz(request)
        return self.get_response(request)
