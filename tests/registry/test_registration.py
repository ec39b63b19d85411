"""Registering a queue: one pipeline per queue, identified by the ARN AWS reports, under its own account.

The emulator answers for any host and any account id in a queue URL's path, so each of these URLs
reaches the same `orders` queue of account 123456789012: only the checks made at registration keep
them from becoming four pipelines with four sets of incidents.
"""

import pytest
from botocore.stub import Stubber
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.forms import modelform_factory

from pipelines import aws
from pipelines.models import AwsAccount, Pipeline
from pipelines.registry.discovery import import_queues
from pipelines.registry.forms import PipelineForm

#: The fields the admin's add page shows.
ADD_FIELDS = [
    "name",
    "account",
    "queue_url",
    "enabled",
    "api_kind",
    "api_id",
    "api_stage",
    "api_log_group",
    "consumer_log_group",
    "request_id_attribute",
    "poll_interval",
    "backlog_threshold",
    "oldest_age_sla",
    "dlq_threshold",
]
AddForm = modelform_factory(Pipeline, form=PipelineForm, fields=ADD_FIELDS)
ARN = "arn:aws:sqs:us-east-1:123456789012:orders"


def submit(account, url, name="orders", instance=None):
    """Register (or re-save) a pipeline as the admin does: the form discovers, then the row is saved."""
    data = {
        "name": name,
        "account": account.pk,
        "queue_url": url,
        "enabled": "on",
        "request_id_attribute": "requestId",
        "poll_interval": 60,
        "backlog_threshold": 1000,
        "oldest_age_sla": 900,
        "dlq_threshold": 1,
    }
    form = AddForm(data=data, instance=instance)
    if form.is_valid():
        p = form.save(commit=False)
        p.apply_discovery(form.discovery.fields)
        p.save()
    return form


def queue_error(form) -> str:
    return " ".join(form.errors.get("queue_url", [])) or " ".join(form.non_field_errors())


def test_it_registers_the_issues_four_urls_of_one_queue_once(account, build, emulator):
    made = build("orders")
    assert made.queue_url == f"{emulator.url}/123456789012/orders" and made.queue_arn == ARN
    assert submit(account, made.queue_url).is_valid()
    for i, url in enumerate(
        [
            "http://127.0.0.1:1/123456789012/orders",
            "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
            f"{emulator.url}/999999999999/orders",
            "https://sqs.us-east-1.amazonaws.com/999999999999/orders",
        ]
    ):
        form = submit(account, url, name=f"orders-{i}")
        assert not form.is_valid(), url
    assert list(Pipeline.objects.values_list("name", "queue_arn")) == [("orders", ARN)]


@pytest.mark.parametrize(
    "url, wrong",
    [
        ("http://127.0.0.1:1/123456789012/orders", "host 127.0.0.1:1 is not this account's SQS endpoint"),
        (
            "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
            "host sqs.us-east-1.amazonaws.com is not this account's SQS endpoint",
        ),
        ("{emulator}/999999999999/orders", "The queue URL names AWS account 999999999999"),
        ("https://sqs.us-east-1.amazonaws.com/999999999999/orders", "The queue URL names AWS account 999999999999"),
    ],
)
def test_it_says_what_to_enter_instead_of_a_url_of_another_host_or_account(account, build, emulator, url, wrong):
    build("orders")
    message = queue_error(submit(account, url.format(emulator=emulator.url)))
    assert wrong in message
    assert (
        f"This account is 123456789012 in us-east-1 at {emulator.url}: "
        f"enter {emulator.url}/123456789012/orders" in message
    )
    assert not Pipeline.objects.exists()


def test_it_refuses_a_queue_registered_under_another_account(account, build, emulator):
    made = build("orders")
    assert submit(account, made.queue_url).is_valid()
    # A second opsboard account reaching the same AWS account and region: the same queue.
    twin = AwsAccount.objects.create(name="twin", region="us-east-1", endpoint_url=emulator.url)
    form = submit(twin, made.queue_url, name="orders-again")
    assert queue_error(form) == (
        f"This queue ({ARN}) is already registered as pipeline 'orders' on emulated (us-east-1): "
        "open that pipeline instead of registering the queue again."
    )
    assert Pipeline.objects.count() == 1


def test_it_lets_a_registered_pipeline_be_saved_again(account, build):
    made = build("orders")
    submit(account, made.queue_url)
    p = Pipeline.objects.get()
    form = submit(account, made.queue_url, name="orders-renamed", instance=p)
    assert form.is_valid(), form.errors
    assert Pipeline.objects.get().name == "orders-renamed"


def test_it_checks_the_account_id_against_the_queue_arn_when_the_endpoint_lacks_sts(account, build, emulator):
    build("orders")
    sts = aws.client(account.target(), "sts")
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", service_error_code="InvalidAction", http_status_code=400)
        message = queue_error(submit(account, f"{emulator.url}/999999999999/orders"))
    assert f"AWS reports this queue as {ARN}" in message
    assert f"enter {emulator.url}/123456789012/orders" in message
    assert not Pipeline.objects.exists()


def test_it_skips_queues_registered_under_another_account_on_import(account, build, emulator):
    made = build("orders")
    assert submit(account, made.queue_url).is_valid()
    twin = AwsAccount.objects.create(name="twin", region="us-east-1", endpoint_url=emulator.url)
    result = import_queues(twin)
    assert result.created == []
    assert (made.queue_url, "already registered as pipeline 'orders' on emulated (us-east-1)") in result.skipped
    assert Pipeline.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_disables_duplicates_already_in_the_database_when_migrating():
    before, after = [("pipelines", "0007_health_reasons_are_findings")], [("pipelines", "0008_one_pipeline_per_queue")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldAccount, OldPipeline = old.get_model("pipelines", "AwsAccount"), old.get_model("pipelines", "Pipeline")
    acct = OldAccount.objects.create(name="emulated", region="us-east-1", endpoint_url="http://127.0.0.1:5000")
    base = "http://127.0.0.1:5000"
    # The first registration named the wrong account id; the right one came later, and a third, unrelated queue.
    OldPipeline.objects.create(name="orders-999", account=acct, queue_url=f"{base}/999999999999/orders", queue_arn=ARN)
    OldPipeline.objects.create(name="orders", account=acct, queue_url=f"{base}/123456789012/orders", queue_arn=ARN)
    OldPipeline.objects.create(
        name="billing",
        account=acct,
        queue_url=f"{base}/123456789012/billing",
        queue_arn=ARN.replace("orders", "billing"),
    )
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(latest)
    kept, dropped = Pipeline.objects.get(name="orders"), Pipeline.objects.get(name="orders-999")
    assert kept.enabled and kept.queue_arn == ARN and kept.last_error == ""
    assert not dropped.enabled and dropped.queue_arn == ""
    assert dropped.last_error.startswith(f"Not monitored: this queue ({ARN}) is also registered as pipeline 'orders'")
    assert Pipeline.objects.get(name="billing").enabled
