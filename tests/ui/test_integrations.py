"""Prometheus /metrics and /healthz: what a scraper reads, who may read it, and what a probe is told."""

import json
import signal
import socket
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, connections
from django.db.utils import load_backend
from django.test.utils import CaptureQueriesContext
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from pipelines import aws
from pipelines.clock import now
from pipelines.collection import cycles, store
from pipelines.models import (
    AwsAccount,
    CycleKind,
    Incident,
    IncidentStatus,
    Pipeline,
    PollCounter,
    PollCycle,
    RuleKind,
    Severity,
)
from pipelines.ui import healthz
from tests.test_settings import PROD, run_manage

TOKEN = "scrape-token-0123456789abcdef"
LOOPBACK = ("127.0.0.0/8", "::1/128")


@pytest.fixture(autouse=True)
def metrics_defaults(settings):
    """Whatever the environment says: no token, and loopback configured explicitly as the one source
    (a Prometheus on this machine that connects directly), which is what the test client is."""
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = LOOPBACK
    return settings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(response) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from a text-format exposition, via Prometheus' own parser."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found, name, **labels):
    if name.startswith("opsboard_pipeline_"):
        labels.setdefault("group", "")  # every per-pipeline series has one; these pipelines have none
    return found.get((name, tuple(sorted(labels.items()))))


def seed(target, p, visible=0, dlq=0):
    sqs = aws.client(target, "sqs")
    for i in range(visible):
        sqs.send_message(QueueUrl=p.queue_url, MessageBody=f"m{i}")
    for i in range(dlq):
        sqs.send_message(QueueUrl=p.dlq_url, MessageBody=f"x{i}")


def incident(p, rule, severity, status=IncidentStatus.OPEN):
    return Incident.objects.create(pipeline=p, rule=rule, severity=severity, status=status, summary="fired")


# --- /metrics: content -----------------------------------------------------------------------------


def test_it_exports_each_pipelines_latest_values(client, target, register, account):
    orders, billing = register("orders"), register("billing")
    Pipeline.objects.create(
        name="archive",
        account=account,
        enabled=False,  # registered, never polled
        queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/archive",
    )
    seed(target, orders, visible=7, dlq=2)
    seed(target, billing, visible=1)
    report = cycles.run_fast_cycle(account, [orders, billing])
    assert report.errors == {}
    Pipeline.objects.filter(pk=orders.pk).update(
        oldest_age=1200,
        time_to_loss=7200.0,
        drain_rate=-3.5,
        recent_errors=4,
        recent_throttles=2,
        recent_invocations=90,
    )
    Incident.objects.all().delete()  # whatever the alert rules opened after the sync: start from a known set
    incident(orders, RuleKind.DLQ, Severity.WARNING)
    incident(orders, RuleKind.TIME_TO_LOSS, Severity.CRITICAL, IncidentStatus.ACKNOWLEDGED)
    incident(orders, RuleKind.BACKLOG, Severity.CRITICAL, IncidentStatus.RESOLVED)

    found = samples(client.get("/metrics"))

    o = {"pipeline": "orders", "account": "emulated", "queue": "orders"}
    b = {"pipeline": "billing", "account": "emulated", "queue": "billing"}
    assert value(found, "opsboard_pipeline_backlog_messages", **o) == 7
    assert value(found, "opsboard_pipeline_dlq_messages", **o) == 2
    assert value(found, "opsboard_pipeline_backlog_messages", **b) == 1
    assert value(found, "opsboard_pipeline_dlq_messages", **b) == 0
    assert value(found, "opsboard_pipeline_oldest_message_age_seconds", **o) == 1200
    assert value(found, "opsboard_pipeline_time_to_loss_seconds", **o) == 7200
    assert value(found, "opsboard_pipeline_time_to_loss_seconds", **b) is None  # no loss in sight: no sample
    # The model keeps messages per minute; the metric is in the base unit, per second.
    assert value(found, "opsboard_pipeline_backlog_trend_messages_per_second", **o) == pytest.approx(-3.5 / 60)
    assert value(found, "opsboard_pipeline_lambda_errors_recent", **o) == 4
    assert value(found, "opsboard_pipeline_lambda_throttles_recent", **o) == 2
    assert value(found, "opsboard_pipeline_lambda_invocations_recent", **o) == 90
    assert value(found, "opsboard_pipeline_backlog_threshold_messages", **o) == 1000
    assert value(found, "opsboard_pipeline_oldest_age_sla_seconds", **o) == 900
    assert value(found, "opsboard_pipeline_retention_seconds", **o) == 345600
    assert value(found, "opsboard_pipeline_consecutive_sync_failures", **o) == 0
    orders.refresh_from_db()
    assert value(found, "opsboard_pipeline_last_sync_timestamp_seconds", **o) == pytest.approx(
        orders.last_sync_at.timestamp()
    )
    # Health: the DLQ holds messages, so orders warns; billing is fine; archive is disabled.
    assert value(found, "opsboard_pipeline_health", **o, health="warning") == 1
    assert value(found, "opsboard_pipeline_health", **o, health="ok") == 0
    assert value(found, "opsboard_pipeline_health", **b, health="ok") == 1
    a = {"pipeline": "archive", "account": "emulated", "queue": ""}
    assert value(found, "opsboard_pipeline_health", **a, health="disabled") == 1
    assert value(found, "opsboard_pipeline_enabled", **a) == 0 and value(found, "opsboard_pipeline_enabled", **o) == 1
    assert value(found, "opsboard_pipeline_backlog_messages", **a) is None  # never synced: no made-up zero
    # Unresolved incidents by severity (the resolved one is not counted).
    assert value(found, "opsboard_pipeline_open_incidents", **o, severity="critical") == 1
    assert value(found, "opsboard_pipeline_open_incidents", **o, severity="warning") == 1
    assert value(found, "opsboard_pipeline_open_incidents", **b, severity="critical") == 0
    # Poll cost: exactly the calls the cycle made, and what they cost.
    assert report.calls == {"sqs:GetQueueAttributes": 4}
    assert value(found, "opsboard_aws_requests_total", account="emulated", operation="sqs:GetQueueAttributes") == 4
    assert value(found, "opsboard_cloudwatch_metrics_requested_total", account="emulated") == 0
    assert value(found, "opsboard_aws_estimated_cost_usd_total", account="emulated", service="sqs") == pytest.approx(
        4 * 0.40 / 1e6
    )
    cycle = PollCycle.objects.get(kind=CycleKind.FAST)
    assert value(found, "opsboard_cycle_last_finished_timestamp_seconds", kind="fast") == pytest.approx(
        cycle.finished_at.timestamp()
    )
    assert value(found, "opsboard_cycle_last_finished_timestamp_seconds", kind="metrics") is None


def test_it_counts_exactly_the_calls_each_cycle_makes(client, target, register, account):
    p = register("orders")
    first = cycles.run_fast_cycle(account, [p])
    before = samples(client.get("/metrics"))
    second = cycles.run_fast_cycle(account, [p])
    metrics = cycles.run_metrics_cycle(account, [p])
    after = samples(client.get("/metrics"))

    def requests(found, op):
        return value(found, "opsboard_aws_requests_total", account="emulated", operation=op) or 0

    assert first.calls == second.calls == {"sqs:GetQueueAttributes": 2}
    assert requests(after, "sqs:GetQueueAttributes") - requests(before, "sqs:GetQueueAttributes") == 2
    for op, n in metrics.calls.items():
        assert requests(after, op) - requests(before, op) == n
    assert metrics.metrics_requested > 0
    assert value(after, "opsboard_cloudwatch_metrics_requested_total", account="emulated") == metrics.metrics_requested
    assert value(
        after, "opsboard_aws_estimated_cost_usd_total", account="emulated", service="cloudwatch"
    ) == pytest.approx(metrics.metrics_requested * 0.01 / 1e3)
    assert PollCounter.objects.get(account=account, operation="sqs:GetQueueAttributes").total == 4


def test_the_counters_are_kept_per_account(client, register, account, emulator):
    other = AwsAccount.objects.create(name="second", region="us-east-1", endpoint_url=emulator.url)
    p = register("orders")
    q = register("billing", account_=other)
    cycles.run_fast_cycle(account, [p])
    cycles.run_fast_cycle(other, [q])
    cycles.run_fast_cycle(other, [q])
    found = samples(client.get("/metrics"))
    assert value(found, "opsboard_aws_requests_total", account="emulated", operation="sqs:GetQueueAttributes") == 2
    assert value(found, "opsboard_aws_requests_total", account="second", operation="sqs:GetQueueAttributes") == 4


@pytest.mark.django_db(transaction=True)
def test_two_workers_finishing_cycles_at_once_lose_no_count():
    if connection.vendor != "postgresql":
        pytest.skip("needs a database that takes concurrent writers (Postgres; SQLite serialises them)")
    account = AwsAccount.objects.create(name="busy", region="us-east-1")
    barrier = threading.Barrier(4)

    def worker():
        try:
            barrier.wait()
            for _ in range(10):
                meter = aws.CallMeter()
                meter.calls["sqs:GetQueueAttributes"] = 3
                meter.add_metrics(5)
                store.record_cycle(store.CycleReport(kind=CycleKind.FAST, account="busy"), account, now(), meter)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = dict(PollCounter.objects.filter(account=account).values_list("operation", "total"))
    assert totals == {"sqs:GetQueueAttributes": 4 * 10 * 3, "metrics_requested": 4 * 10 * 5}
    assert PollCycle.objects.filter(account=account).count() == 40


def test_it_answers_in_openmetrics_when_asked(client, db):
    account = AwsAccount.objects.create(name="a", region="us-east-1")
    Pipeline.objects.create(name="orders", account=account, queue_url="https://sqs/orders", backlog=3)
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in parse_openmetrics(response.content.decode())}
    assert families["opsboard_pipeline_backlog_messages"].samples[0].value == 3


def test_it_costs_the_same_few_queries_for_many_pipelines(client, db, django_assert_max_num_queries):
    account = AwsAccount.objects.create(name="a", region="us-east-1")

    def add(n):
        start = Pipeline.objects.count()
        for i in range(start, start + n):
            p = Pipeline.objects.create(
                name=f"p{i:03}", account=account, queue_url=f"https://sqs/q{i}", backlog=i, last_sync_at=now()
            )
            incident(p, RuleKind.BACKLOG, Severity.WARNING)
            PollCounter.objects.create(account=account, operation=f"sqs:Op{i}", total=i)
        PollCycle.objects.create(kind=CycleKind.FAST, account=account, finished_at=now())

    add(3)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/metrics").status_code == 200
    add(120)
    with django_assert_max_num_queries(len(few)):
        found = samples(client.get("/metrics"))
    assert len(few) <= 9  # six for the rows, incidents, counters and cycles; three for the SLO budgets
    assert value(found, "opsboard_pipeline_backlog_messages", pipeline="p122", account="a", queue="") == 122


# --- /metrics: protection --------------------------------------------------------------------------


def test_it_serves_no_one_when_nothing_is_configured(client, db, metrics_defaults):
    metrics_defaults.METRICS_ALLOWED_IPS = ()
    # A reverse proxy on the same host that adds no forwarding header (nginx's default) connects from
    # loopback: were loopback trusted by default, every client it relays could read the metrics.
    for addr in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "192.0.2.10"):
        refused = client.get("/metrics", REMOTE_ADDR=addr)
        assert refused.status_code == 403 and b"opsboard_" not in refused.content
        assert "METRICS_ALLOWED_IPS" in refused.content.decode() and "METRICS_TOKEN" in refused.content.decode()


def test_it_serves_loopback_when_loopback_is_the_configured_source(client, db, metrics_defaults):
    metrics_defaults.METRICS_ALLOWED_IPS = LOOPBACK
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="192.0.2.10")
    assert refused.status_code == 403
    assert "only to METRICS_ALLOWED_IPS" in refused.content.decode()
    # A reverse proxy on the same machine connects from loopback: what it relays is not local.
    relayed = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert relayed.status_code == 403 and "came through a proxy" in relayed.content.decode()
    # A TLS-terminating proxy may add only the scheme; that, too, is a relayed request.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="https").status_code == 403


def test_it_requires_the_bearer_token_when_one_is_set(client, db, metrics_defaults):
    metrics_defaults.METRICS_TOKEN = TOKEN
    metrics_defaults.METRICS_ALLOWED_IPS = ()
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer ")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong["WWW-Authenticate"]
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert b"opsboard_" not in missing.content + wrong.content
    ok = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and b"# TYPE opsboard_pipeline_health gauge" in ok.content
    # With only a token configured, it may come from anywhere, through a proxy too.
    assert (
        client.get(
            "/metrics",
            REMOTE_ADDR="203.0.113.9",
            HTTP_X_FORWARDED_FOR="198.51.100.7",
            HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        ).status_code
        == 200
    )


def test_it_admits_only_the_allowed_addresses(client, db, metrics_defaults):
    metrics_defaults.METRICS_ALLOWED_IPS = ("10.0.0.0/8", "192.168.1.5/32")
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.5").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="192.168.1.6")
    assert refused.status_code == 403
    assert refused.content.decode().startswith("Metrics are not served to 192.168.1.6: only to METRICS_ALLOWED_IPS.")
    # Loopback is admitted only when the list names it.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="10.0.0.2").status_code == 403


def test_it_wants_both_when_both_are_set(client, db, metrics_defaults):
    metrics_defaults.METRICS_TOKEN = TOKEN
    metrics_defaults.METRICS_ALLOWED_IPS = ("10.0.0.0/8",)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.1", **auth).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.1").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1", **auth).status_code == 403


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"METRICS_ALLOWED_IPS": "10.0.0.0/8,office"},
            "METRICS_ALLOWED_IPS holds 'office', which is not an IP address",
        ),
        ({"METRICS_ALLOWED_IPS": "10.0.0.1/8"}, "has host bits set"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN is too short"),
    ],
)
def test_bad_protection_settings_stop_start_up_with_a_sentence(env, message):
    res = run_manage("check", env_overrides={**PROD, **env})
    assert res.returncode != 0 and message in res.stderr


def test_the_allow_list_is_read_from_the_environment():
    res = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.METRICS_ALLOWED_IPS)",
        env_overrides={**PROD, "METRICS_ALLOWED_IPS": " 10.0.0.0/8, 192.168.1.5,,::1 "},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "('10.0.0.0/8', '192.168.1.5/32', '::1/128')"


# --- /healthz --------------------------------------------------------------------------------------


@pytest.fixture
def polled(db):
    """An enabled pipeline and a fast cycle that has just finished."""
    account = AwsAccount.objects.create(name="a", region="us-east-1")
    p = Pipeline.objects.create(name="orders", account=account, queue_url="https://sqs/orders")
    PollCycle.objects.create(kind=CycleKind.FAST, account=account, started_at=now(), finished_at=now())
    return p


def health(client, path="/healthz"):
    response = client.get(path)
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content)


def test_it_reports_healthy(client, polled):
    with CaptureQueriesContext(connection) as queries:
        status, body = health(client)
    # Three queries; the savepoints that scope the statement timeout exist only inside a test's transaction.
    assert len([q for q in queries if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE"))]) <= 3
    assert status == 200 and body["status"] == "ok"
    assert {k: v["status"] for k, v in body["checks"].items()} == {"database": "ok", "broker": "ok", "collection": "ok"}
    assert body["checks"]["collection"]["last_fast_cycle_age_seconds"] < 60
    assert body["checks"]["collection"]["max_age_seconds"] == 180


def test_it_is_healthy_with_nothing_to_poll(client, db):
    status, body = health(client)
    assert status == 200 and body["checks"]["collection"]["detail"] == "no pipelines"


def test_it_fails_when_the_redis_broker_is_down(client, polled, settings):
    settings.CELERY_BROKER_URL = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    status, body = health(client)
    assert time.monotonic() - started < 5  # a probe must answer before the load balancer gives up
    assert status == 503 and body["status"] == "fail"
    assert body["checks"]["broker"]["status"] == "fail" and body["checks"]["broker"]["error"] == "OperationalError"
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["collection"]["status"] == "ok"
    assert "hunter2" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)


def test_it_fails_when_the_embedded_brokers_folder_is_missing(client, polled, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path / "gone" / "out"),
        "data_folder_out": str(tmp_path / "gone" / "out"),
        "processed_folder": str(tmp_path / "gone" / "processed"),
        "store_processed": False,
    }
    status, body = health(client)
    assert status == 503 and body["checks"]["broker"]["status"] == "fail"
    assert body["checks"]["broker"]["error"] == "the broker's folders are missing or not writable"
    assert str(tmp_path) not in json.dumps(body)
    (tmp_path / "gone" / "out").mkdir(parents=True)
    (tmp_path / "gone" / "processed").mkdir()
    assert health(client)[0] == 200


@pytest.fixture
def database_down(monkeypatch):
    """The health check's database connection points at a server that is not there."""
    default = connections.settings["default"]
    if default["ENGINE"] == "django.db.backends.sqlite3":
        down = {**default, "NAME": "/nonexistent-opsboard-dir/db.sqlite3"}
    else:
        down = {**default, "HOST": "127.0.0.1", "PORT": str(closed_port())}
    down = connections.configure_settings({"default": dict(default), "down": down})["down"]
    wrapper = load_backend(down["ENGINE"]).DatabaseWrapper(down, alias="down")
    monkeypatch.setattr(healthz, "connections", {"default": wrapper})
    yield
    wrapper.close()


def test_it_fails_when_the_database_is_down(client, polled, database_down):
    status, body = health(client)
    assert status == 503 and body["status"] == "fail"
    assert body["checks"]["database"] == {
        "status": "fail",
        "error": "OperationalError",
        "ms": body["checks"]["database"]["ms"],
    }
    assert body["checks"]["collection"] == {"status": "fail", "detail": "not checked: the database is unavailable"}
    assert body["checks"]["broker"]["status"] == "ok"
    assert "nonexistent" not in json.dumps(body)


def test_it_fails_when_the_last_fast_cycle_is_old(client, polled):
    PollCycle.objects.update(started_at=now() - timedelta(minutes=10), finished_at=now() - timedelta(minutes=10))
    status, body = health(client)
    assert status == 503
    collection = body["checks"]["collection"]
    assert collection["status"] == "fail" and 595 <= collection["last_fast_cycle_age_seconds"] <= 610
    assert "worker and beat" in collection["detail"]
    # A pipeline polled hourly is not late after ten minutes.
    Pipeline.objects.update(poll_interval=3600)
    assert health(client)[0] == 200


def test_it_fails_when_no_fast_cycle_ever_finished(client, polled):
    PollCycle.objects.all().delete()
    status, body = health(client)
    assert status == 503 and body["checks"]["collection"]["detail"] == "no fast cycle has finished yet"


def test_it_never_answers_with_a_server_error(client, polled, monkeypatch):
    def explode(*args):
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(healthz, "check_broker", explode)
    monkeypatch.setattr(healthz, "check_collection", explode)
    status, body = health(client)
    assert status == 503
    assert body["checks"]["broker"]["error"] == body["checks"]["collection"]["error"] == "RuntimeError"
    assert body["checks"]["database"]["status"] == "ok"
    assert "something unexpected" not in json.dumps(body)


def test_it_runs_only_the_checks_asked_for(client, polled, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    status, body = health(client, "/healthz?checks=database,collection")
    assert status == 200 and set(body["checks"]) == {"database", "collection"}
    response = client.get("/healthz?checks=database,disk")
    assert response.status_code == 400 and "unknown check disk" in json.loads(response.content)["error"]


def test_it_needs_no_login_and_is_never_cached(client, polled):
    response = client.get("/healthz")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_healthz_answers_a_probe_addressed_by_ip_that_allowed_hosts_does_not_list(client, settings):
    settings.ALLOWED_HOSTS = ["ops.example.com"]
    assert client.get("/admin/login/", HTTP_HOST="10.0.3.17").status_code == 400  # the rest stays guarded
    response = client.get("/healthz?checks=database", HTTP_HOST="10.0.3.17")
    assert response.status_code == 200 and response.json()["status"] == "ok"


@contextmanager
def give_up_after(seconds):
    def interrupt(signum, frame):
        raise TimeoutError(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def silent_server():
    """A TCP server on loopback that accepts connections and never answers: a hung broker or database."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_it_fails_fast_when_the_broker_accepts_and_never_answers(client, polled, settings, silent_server, scheme):
    settings.CELERY_BROKER_URL = f"{scheme}://127.0.0.1:{silent_server}/0"
    started = time.monotonic()
    with give_up_after(8):  # a hung probe is interrupted, so the test fails rather than hangs
        status, body = health(client)
    assert time.monotonic() - started < 5  # not the minute it took, ending in a 500
    assert status == 503 and body["checks"]["broker"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["collection"]["status"] == "ok"


def test_hung_probes_do_not_starve_other_requests(live_server, settings, silent_server):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{silent_server}/0"
    import urllib.error
    import urllib.request

    def get(path):
        try:
            with urllib.request.urlopen(live_server.url + path, timeout=15) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    started = time.monotonic()
    probes = [threading.Thread(target=get, args=("/healthz?checks=broker",)) for _ in range(3)]
    for probe in probes:
        probe.start()
    for probe in probes:
        probe.join()
    assert get("/healthz?checks=broker") == 503
    assert get("/admin/login/") == 200
    assert time.monotonic() - started < 10


@pytest.mark.django_db
def test_healthz_refuses_a_host_name_that_allowed_hosts_does_not_list(client, settings):
    settings.ALLOWED_HOSTS = ["ops.example.com"]
    assert client.get("/healthz?checks=database", HTTP_HOST="attacker.example").status_code == 400
    assert client.get("/healthz?checks=database", HTTP_HOST="ops.example.com").status_code == 200
    assert client.get("/healthz?checks=database", HTTP_HOST="[2001:db8::17]:8000").status_code == 200


def test_it_fails_fast_when_a_table_it_reads_is_locked(client, db):
    if connection.vendor != "postgresql":
        pytest.skip("needs a second session holding a lock (Postgres)")
    locker = load_backend(connection.settings_dict["ENGINE"]).DatabaseWrapper(
        dict(connection.settings_dict), alias="locker"
    )
    with locker.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(f"LOCK TABLE {Pipeline._meta.db_table} IN ACCESS EXCLUSIVE MODE")
    try:
        started = time.monotonic()
        with give_up_after(8):
            status, body = health(client, "/healthz?checks=database,collection")
        assert time.monotonic() - started < 5
        assert status == 503 and body["checks"]["collection"]["status"] == "fail"
        assert body["checks"]["database"]["status"] == "ok"
    finally:
        with locker.cursor() as cursor:
            cursor.execute("ROLLBACK")
        locker.close()
    assert health(client, "/healthz?checks=database,collection")[0] == 200


def test_a_slow_statement_in_a_check_is_cut_off(db, monkeypatch):
    monkeypatch.setattr(healthz, "DATABASE_TIMEOUT", 0.3)
    slow = (
        "SELECT pg_sleep(5)"
        if connection.vendor == "postgresql"
        else "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n"
    )
    started = time.monotonic()
    with pytest.raises(DatabaseError), give_up_after(8), healthz.bounded_database(), connection.cursor() as cursor:
        cursor.execute(slow)
    assert time.monotonic() - started < 2
    with connection.cursor() as cursor:  # the connection is still usable, without the bound
        cursor.execute("SELECT 1")
