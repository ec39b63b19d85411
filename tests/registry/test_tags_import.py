"""A queue's AWS tags become the pipeline's tags and group when it is registered, refreshed or imported.

Tags typed in the admin win over the queue's own; the rest follow AWS on every refresh. The group comes
from the PIPELINE_GROUP_TAG tag when the operator left it empty. Reading the tags is one ListQueueTags
call per queue, made at discovery only.
"""

import pytest
from django.forms import modelform_factory

from pipelines import aws
from pipelines.collection import cycles
from pipelines.models import Pipeline
from pipelines.registry import tags
from pipelines.registry.discovery import discover, import_queues, store_discovery
from pipelines.registry.forms import PipelineForm
from pipelines.registry.identity import discover_registration
from tests.test_settings import PROD, run_manage

FIELDS = [
    "name",
    "account",
    "queue_url",
    "enabled",
    "group",
    "tags",
    "request_id_attribute",
    "poll_interval",
    "backlog_threshold",
    "oldest_age_sla",
    "dlq_threshold",
]
Form = modelform_factory(Pipeline, form=PipelineForm, fields=FIELDS)


def tag_queue(target, url, **values):
    aws.client(target, "sqs").tag_queue(QueueUrl=url, Tags=values)


def register(account, url, group="", typed=""):
    """Register a pipeline as the admin's add page does: the form discovers, save_model stores it."""
    form = Form(
        data={
            "name": "orders",
            "account": account.pk,
            "queue_url": url,
            "enabled": "on",
            "group": group,
            "tags": typed,
            "request_id_attribute": "requestId",
            "poll_interval": 60,
            "backlog_threshold": 1000,
            "oldest_age_sla": 900,
            "dlq_threshold": 1,
        }
    )
    assert form.is_valid(), form.errors
    pipeline = form.save(commit=False)
    store_discovery(pipeline, form.discovery)
    pipeline.save()
    return pipeline


def refresh(pipeline):
    """What the admin's "Refresh from AWS" action does for one pipeline."""
    found = discover_registration(pipeline.account, pipeline.queue_url, pipeline_pk=pipeline.pk)
    store_discovery(pipeline, found)
    pipeline.save()
    pipeline.refresh_from_db()
    return pipeline


def test_it_imports_the_queues_tags_and_takes_the_group_from_the_team_tag(account, build, target, settings):
    settings.PIPELINE_GROUP_TAG = "team"
    made = build("orders")
    tag_queue(target, made.queue_url, team="payments", env="prod", **{"aws:cloudformation:stack-name": "orders-stack"})

    p = Pipeline.objects.get(pk=register(account, made.queue_url).pk)

    assert p.group == "payments"
    assert p.tags == {"team": "payments", "env": "prod", "aws:cloudformation:stack-name": "orders-stack"}
    assert list(tags.filter_by_tag(Pipeline.objects.all(), "env=prod")) == [p]


def test_it_keeps_what_the_operator_typed_over_the_queues_tags(account, build, target, settings):
    settings.PIPELINE_GROUP_TAG = "team"
    made = build("orders")
    tag_queue(target, made.queue_url, team="payments", env="prod")

    p = register(account, made.queue_url, group="checkout", typed="env=staging, critical")

    p.refresh_from_db()
    assert p.group == "checkout"
    assert p.tags == {"env": "staging", "critical": "", "team": "payments"}


def test_a_refresh_follows_aws_for_imported_tags_and_keeps_hand_set_ones(account, build, target, settings):
    settings.PIPELINE_GROUP_TAG = "team"
    made = build("orders")
    tag_queue(target, made.queue_url, team="payments", env="prod", tier="1")
    p = register(account, made.queue_url, typed="owner=ana")
    p.tags = {**p.tags, "tier": "gold"}  # the operator overrides one imported tag in the admin
    p.save()

    sqs = aws.client(target, "sqs")
    sqs.untag_queue(QueueUrl=made.queue_url, TagKeys=["env"])
    tag_queue(target, made.queue_url, team="billing", tier="2", region="eu")
    p = refresh(p)

    assert p.group == "billing"  # it came from AWS, so it follows AWS
    assert p.tags == {"team": "billing", "tier": "gold", "region": "eu", "owner": "ana"}
    assert p.aws_tags == {"team": "billing", "tier": "2", "region": "eu"}


def test_it_leaves_the_group_alone_when_no_tag_is_named(account, build, target, settings):
    settings.PIPELINE_GROUP_TAG = ""
    made = build("orders")
    tag_queue(target, made.queue_url, team="payments")

    p = register(account, made.queue_url)

    p.refresh_from_db()
    assert p.group == "" and p.tags == {"team": "payments"}


def test_the_import_command_path_brings_tags_and_groups_too(account, build, target, settings):
    settings.PIPELINE_GROUP_TAG = "team"
    tagged = build("orders")
    build("billing")
    tag_queue(target, tagged.queue_url, team="payments", **{"bad,key": "x"})

    result = import_queues(account)

    assert sorted(result.created) == ["billing", "orders"]
    orders, billing = Pipeline.objects.get(name="orders"), Pipeline.objects.get(name="billing")
    assert (orders.group, orders.tags) == ("payments", {"team": "payments"})
    assert (billing.group, billing.tags) == ("", {})
    assert any("bad,key" in w for w in result.warnings)  # a key the admin could not show is left out, said


def test_reading_tags_costs_one_call_at_discovery_and_none_per_sync(account, build, target):
    made = build("orders")
    tag_queue(target, made.queue_url, team="payments")
    with aws.metering() as meter:
        found = discover(account.target(), made.queue_url)
    assert meter.calls["sqs:ListQueueTags"] == 1 and found.aws_tags == {"team": "payments"}

    p = Pipeline(name="orders", account=account)
    store_discovery(p, found)
    p.save()
    reports = cycles.sync_pipelines([p])
    calls = {op for r in reports for op in r.calls}
    assert all(r.errors == {} for r in reports) and "sqs:GetQueueAttributes" in calls
    assert "sqs:ListQueueTags" not in calls


def test_tags_that_cannot_be_read_are_kept_as_they_were(account, build, target, monkeypatch):
    made = build("orders")
    tag_queue(target, made.queue_url, team="payments")
    p = register(account, made.queue_url)

    def denied(*args, **kwargs):
        raise aws.AwsError("not allowed", "AccessDenied")

    monkeypatch.setattr(aws, "queue_tags", denied)
    found = discover_registration(account, made.queue_url, pipeline_pk=p.pk)
    store_discovery(p, found)
    assert p.tags == {"team": "payments"} and p.group == "payments"
    assert any("sqs:ListQueueTags" in w for w in found.warnings)


# --- the merge, without AWS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags_now", "group", "previous", "current", "expected"),
    [
        ({}, "", {}, {"team": "a", "env": "prod"}, ({"team": "a", "env": "prod"}, "a")),
        ({"team": "a", "env": "prod"}, "a", {"team": "a", "env": "prod"}, {"team": "b"}, ({"team": "b"}, "b")),
        ({"team": "x"}, "ops", {}, {"team": "a"}, ({"team": "x"}, "ops")),
        ({"env": "dev"}, "", {"env": "prod"}, {"env": "test"}, ({"env": "dev"}, "")),
    ],
)
def test_hand_set_tags_and_groups_win_and_imported_ones_follow_aws(tags_now, group, previous, current, expected):
    assert tags.merge_aws_tags(tags_now, group, previous, current, "team") == expected


def test_it_keeps_at_most_fifty_tags_hand_set_ones_first():
    hand = {f"h{i:02}": "" for i in range(45)}
    merged, _ = tags.merge_aws_tags(hand, "", {}, {f"a{i:02}": "v" for i in range(10)})
    assert len(merged) == tags.MAX_TAGS and set(hand) <= set(merged)


def test_it_refuses_aws_tags_the_admin_could_not_show_back():
    kept, refused = tags.importable({"team": " payments ", "a=b": "x", "list": "a,b", "empty": ""})
    assert kept == {"team": "payments", "empty": ""} and refused == ["a=b", "list"]


def test_a_group_tag_that_is_not_a_tag_key_stops_start_up_with_a_sentence():
    res = run_manage("check", env_overrides={**PROD, "PIPELINE_GROUP_TAG": "team=payments"})
    assert res.returncode != 0 and "PIPELINE_GROUP_TAG is 'team=payments'" in res.stderr
    assert "Traceback" not in res.stderr
