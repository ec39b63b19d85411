"""Assumed-role credentials are cached per account in the process: shards and cycles do not call STS each
time, credentials are renewed shortly before they expire, and a denied role costs one STS call, not one
per queue. STS is the emulator's, behind a proxy that counts the AssumeRole calls."""

import time
from datetime import timedelta

import pytest

from pipelines.aws.client import _credentials as cached_credentials
from pipelines.aws.client import reset_clients
from pipelines.collection import cycles, shards
from pipelines.models import AwsAccount, Pipeline

ROLE = "arn:aws:iam::123456789012:role/opsboard-read"


@pytest.fixture
def assumed(fault_proxy):
    """AssumeRole calls that reached the proxy (the emulator's STS behind it)."""
    calls = []
    fault_proxy.rule = lambda req: calls.append(req.operation) if req.operation == "AssumeRole" else ""
    return calls


@pytest.fixture
def role_account(db, fault_proxy, settings):
    settings.LOCK_REDIS_URL = ""
    reset_clients()
    return AwsAccount.objects.create(name="assumed", region="us-east-1", role_arn=ROLE, endpoint_url=fault_proxy.url)


def test_shards_and_cycles_share_one_assumed_role(register, role_account, assumed):
    for i in range(4):
        register(f"r{i}", account_=role_account)
    assert assumed == ["AssumeRole"]  # discovery assumed it; everything after reuses it
    at = shards.cycle_end("fast", shards.cycle_of("fast", cycles.clock.now())) - timedelta(seconds=50)
    for shard in shards.plan("fast", shards.cycle_of("fast", at), max_pipelines=2):
        assert shards.run_shard("fast", *shard.task_args, at=at)["failed"] == 0
    report = cycles.run_metrics_cycle(role_account)
    assert report.errors == {} and report.calls.get("cloudwatch:GetMetricData")
    assert assumed == ["AssumeRole"]  # two fast shards (8 GetQueueAttributes) and a metrics cycle later


def test_credentials_are_renewed_shortly_before_they_expire(register, role_account, assumed):
    p = register("orders", account_=role_account)
    creds = cached_credentials[role_account.target()]
    expiry = creds._expiry_time
    # Eight minutes before they expire (inside botocore's mandatory 10-minute window), a call renews them;
    # the renewed ones (a later expiry: the emulator counts an hour from now) are as good as new.
    time.sleep(1.1)
    real = creds._time_fetcher
    creds._time_fetcher = lambda: expiry - timedelta(minutes=8) if creds._expiry_time <= expiry else real()
    report = cycles.run_fast_cycle(role_account, [p])
    assert report.errors == {} and report.calls["sts:AssumeRole"] == 1 and len(assumed) == 2
    creds._time_fetcher = lambda: expiry - timedelta(minutes=20)  # well before: no call
    assert "sts:AssumeRole" not in cycles.run_fast_cycle(role_account, [p]).calls and len(assumed) == 2


def test_a_denied_role_costs_one_sts_call_not_one_per_queue(register, role_account, fault_proxy, assumed):
    for i in range(3):
        register(f"d{i}", account_=role_account)
    reset_clients()
    assumed.clear()
    fault_proxy.rule = lambda req: (assumed.append(req.operation) or "deny") if req.operation == "AssumeRole" else ""
    report = cycles.run_fast_cycle(role_account)
    assert len(report.errors) == 3 and len(assumed) == 1
    for p in Pipeline.objects.filter(account=role_account):
        assert p.last_error.startswith(f"queue: assuming role {ROLE}: access denied")
