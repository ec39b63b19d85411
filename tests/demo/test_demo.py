"""The demo end to end: `manage.py demo` as `make demo` runs it, on its own database and var dir."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from opsboard_demo.emulator import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_starts_everything_and_fills_the_history(tmp_path):
    db = tmp_path / "demo.sqlite3"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DEBUG="true",
        DATABASE_URL=f"sqlite:///{db}",
        OPSBOARD_VAR_DIR=str(tmp_path / "var"),
        CELERY_BROKER_URL="filesystem://",
        LOCK_REDIS_URL="",
        FAST_INTERVAL_SECONDS="60",
    )

    def manage(*args, timeout=120):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )

    assert manage("migrate", "--noinput", "-v0").returncode == 0
    res = manage(
        "demo", "--port", str(port), "--history-hours", "0.75", "--duration", "100", "--tick", "1", timeout=260
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"opsboard is running: http://127.0.0.1:{port}/admin/" in res.stdout
    assert "login: admin / " in res.stdout and "demo stopped" in res.stdout
    assert "Traceback" not in res.stderr

    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT name, id FROM pipelines_pipeline").fetchall())
    assert {"orders", "checkout-events", "invoices", "image-resize", "notifications", "payments"} <= set(rows)
    spike_backlog = con.execute(
        "SELECT max(visible) FROM pipelines_metricsample WHERE pipeline_id = ?", (rows["checkout-events"],)
    ).fetchone()[0]
    poison_dlq = con.execute(
        "SELECT max(dlq_visible) FROM pipelines_metricsample WHERE pipeline_id = ?", (rows["invoices"],)
    ).fetchone()[0]
    assert spike_backlog > 0 and poison_dlq > 0
    kinds = {k for (k,) in con.execute("SELECT DISTINCT kind FROM pipelines_pollcycle")}
    assert {"fast", "metrics", "backfill"} <= kinds
    # The worker's beat ran cycles of its own while the demo was up (not only the demo's first sync).
    fast_cycles = con.execute("SELECT count(*) FROM pipelines_pollcycle WHERE kind = 'fast'").fetchone()[0]
    assert fast_cycles >= 2
    assert con.execute("SELECT count(*) FROM pipelines_pipeline WHERE last_error != ''").fetchone()[0] == 0
    # The poison and throttle pipelines opened incidents, and the worker delivered them to the demo's
    # webhook receiver, which printed each one.
    opened = {
        name
        for (name,) in con.execute(
            "SELECT p.name FROM pipelines_incident i JOIN pipelines_pipeline p ON p.id = i.pipeline_id"
        )
    }
    assert {"invoices", "image-resize"} <= opened
    delivered = con.execute("SELECT count(*) FROM pipelines_delivery WHERE status = 'sent'").fetchone()[0]
    assert delivered >= 2
    printed = [line for line in res.stdout.splitlines() if " webhook: " in line]
    assert any("invoices" in line for line in printed) and any("image-resize" in line for line in printed)
    assert (tmp_path / "var" / "demo-webhooks.jsonl").read_text().count("\n") == len(printed)


WITHOUT_THE_EMULATOR = """
import importlib.abc, importlib.util, pkgutil, sys

class Absent(importlib.abc.MetaPathFinder):
    # As if the emulator extra were not installed: moto cannot be found or imported.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "moto":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] == "moto" else real_find_spec(name, *a)

import django
django.setup()
from django.conf import settings
from django.urls import resolve
import pipelines, opsboard
for package in (pipelines, opsboard):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
resolve("/admin/")
assert "opsboard_demo" not in settings.INSTALLED_APPS
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("opsboard_demo", "moto"))
assert not loaded, loaded
print("clean")
"""


def test_a_production_install_without_the_emulator_never_imports_the_demo():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DJANGO_SETTINGS_MODULE="opsboard.settings", SECRET_KEY="x" * 50, DEBUG="false")
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_EMULATOR], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr[-2000:]


def test_the_demo_emulator_keeps_the_send_time_of_seeded_messages():
    import time

    from opsboard_demo.emulator import SENT_AT, MotoServer
    from pipelines import aws

    with MotoServer(backdating=True) as moto:
        sqs = aws.client(aws.Target(region="us-east-1", endpoint_url=moto.url), "sqs")
        url = sqs.create_queue(QueueName="seeded")["QueueUrl"]
        sent = int((time.time() - 3 * 3600) * 1000)
        attributes = {SENT_AT: {"DataType": "Number", "StringValue": str(sent)}}
        sqs.send_message(QueueUrl=url, MessageBody="waited three hours", MessageAttributes=attributes)
        sqs.send_message(QueueUrl=url, MessageBody="just now")
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["SentTimestamp"])["Messages"]
        times = {m["Body"]: int(m["Attributes"]["SentTimestamp"]) for m in got}
        assert times["waited three hours"] == sent and times["just now"] > sent + 3 * 3600 * 1000 - 60_000


def test_the_demo_stops_and_says_so_when_its_emulator_dies(tmp_path):
    import re
    import signal

    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DEBUG="true",
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        OPSBOARD_VAR_DIR=str(tmp_path / "var"),
        CELERY_BROKER_URL="filesystem://",
        LOCK_REDIS_URL="",
    )
    run = {"cwd": ROOT, "env": env, "text": True}
    assert subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], capture_output=True, **run).returncode == 0
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--no-web", "--no-worker", "--history-hours", "0", "--duration", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **run,
    )
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "opsboard is running" in line:
                break
        port = re.search(r"emulated AWS \(moto\) at http://127\.0\.0\.1:(\d+)", "".join(lines)).group(1)
        moto = next(
            int(pid)
            for pid in os.listdir("/proc")
            if pid.isdigit()
            and f"-p\0{port}" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            and "moto_server" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        )
        os.kill(moto, signal.SIGKILL)
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode != 0
    assert "The emulated AWS (moto) stopped" in err and "so the demo stopped too" in err
    assert "Traceback" not in err
