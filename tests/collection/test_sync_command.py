"""manage.py sync_metrics and import_queues, as an operator runs them."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from pipelines import aws
from pipelines.models import MetricSample, PollCycle


def run(*args):
    out = io.StringIO()
    call_command("sync_metrics", *args, stdout=out)
    return out.getvalue()


def test_it_syncs_everything_and_summarises(register, target):
    p = register("orders")
    aws.client(target, "sqs").send_message(QueueUrl=p.queue_url, MessageBody="hi")
    out = run()
    assert "fast     emulated: 1 pipeline(s), 1 row(s) written, sqs:GetQueueAttributes ×2" in out
    assert "metrics  emulated: 1 pipeline(s)" in out and "cloudwatch:GetMetricData ×1" in out
    assert MetricSample.objects.get(pipeline=p).visible == 1


def test_it_prints_json(register):
    register("orders")
    data = json.loads(run("--json", "--fast-only"))
    assert data["ok"] is True and [c["kind"] for c in data["cycles"]] == ["fast"]
    assert data["cycles"][0]["calls"] == {"sqs:GetQueueAttributes": 2}


def test_it_filters_by_pipeline_and_account(register):
    register("a")
    register("b")
    data = json.loads(run("--json", "--fast-only", "--pipeline", "b", "--account", "emulated"))
    assert data["cycles"][0]["pipelines"] == 1
    with pytest.raises(CommandError, match="No pipeline named 'zzz'"):
        run("--pipeline", "zzz")
    with pytest.raises(CommandError, match="No AWS account named 'nope'"):
        run("--account", "nope")


def test_it_fails_with_the_reason_when_a_pipeline_fails(register, target):
    register("good")
    gone = register("gone")
    aws.client(target, "sqs").delete_queue(QueueUrl=gone.queue_url)
    with pytest.raises(CommandError) as err:
        run("--fast-only")
    assert err.value.returncode == 1
    assert "1 pipeline(s) failed" in str(err.value) and "gone: queue:" in str(err.value)
    assert "does not exist" in str(err.value)


def test_it_exits_non_zero_from_a_shell(emulator, tmp_path):
    """The real command line, on its own database file: exit 1 and the reason on stderr."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
    }

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
        )

    assert manage("migrate", "-v0").returncode == 0
    setup = (
        "from pipelines.models import AwsAccount, Pipeline; "
        f"a = AwsAccount.objects.create(name='e', region='us-east-1', endpoint_url='{emulator.url}'); "
        f"Pipeline.objects.create(name='ghost', account=a, queue_url='{emulator.url}/123456789012/ghost')"
    )
    assert manage("shell", "-c", setup).returncode == 0
    res = manage("sync_metrics", "--fast-only")
    assert res.returncode == 1
    assert "1 pipeline(s) failed" in res.stderr and "ghost: queue:" in res.stderr and "does not exist" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backfill", "--since", "yesterday-ish"], "is not a time"),
        (["--backfill", "--since", "1d", "--until", "2d"], "--since must be earlier"),
        (["--backfill", "--since", "500d"], "CloudWatch keeps metrics for 455 days"),
        (["--since", "1d"], "only go with --backfill"),
    ],
)
def test_bad_arguments_get_a_clear_message(register, args, message):
    register("orders")
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_it_backfills(register):
    register("orders", consumer=False, dlq=False)
    data = json.loads(run("--backfill", "--since", "3h", "--json"))
    assert data["cycles"][0]["kind"] == "backfill" and data["ok"]
    assert PollCycle.objects.filter(kind="backfill").count() == 1


def test_no_pipelines_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No enabled pipeline"):
        run()


def test_import_queues_command(account, build):
    build("alpha")
    out = io.StringIO()
    call_command("import_queues", "--account", "emulated", stdout=out)
    assert "Registered 1 pipeline(s): alpha" in out.getvalue()
    with pytest.raises(CommandError, match="No AWS account named"):
        call_command("import_queues", "--account", "missing")


def test_it_says_which_incidents_a_sync_opened(register, target):
    p = register("orders")
    sqs = aws.client(target, "sqs")
    for i in range(3):
        sqs.send_message(QueueUrl=p.dlq_url, MessageBody=f"dead {i}")
    out = run("--fast-only")
    assert out.rstrip().endswith("; incidents: 1 opened")
    data = json.loads(run("--json", "--fast-only"))
    assert data["cycles"][0]["alerts"]["opened"] == 0 and data["cycles"][0]["alerts"]["evaluated"] == 1
