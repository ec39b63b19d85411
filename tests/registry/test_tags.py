"""Pipeline groups and tags: parsing what an operator types, and selecting pipelines by them."""

import pytest

from pipelines.models import AwsAccount, Pipeline
from pipelines.registry import tags


def test_it_reads_tags_as_typed_and_writes_them_back_the_same_way():
    parsed = tags.parse_tags("team=payments, critical\ncost-centre = 4711")
    assert parsed == {"team": "payments", "critical": "", "cost-centre": "4711"}
    assert tags.format_tags(parsed) == "cost-centre=4711, critical, team=payments"


@pytest.mark.parametrize("bad", ["=x", " =x", "k" * 129])
def test_it_refuses_a_tag_without_a_usable_key(bad):
    with pytest.raises(tags.TagError):
        tags.parse_tags(bad)


@pytest.mark.django_db
def test_it_selects_pipelines_by_group_and_by_tag_key_or_key_and_value():
    account = AwsAccount.objects.create(name="a", region="eu-west-1")
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/"
    pay = Pipeline.objects.create(
        name="pay",
        account=account,
        queue_url=url + "pay",
        group="payments",
        tags={"team": "pay", "aws:cloudformation:stack-name": "x__y", "critical": ""},
    )
    ops = Pipeline.objects.create(name="ops", account=account, queue_url=url + "ops", tags={"team": "ops"})
    everything = Pipeline.objects.all()
    assert list(tags.filter_by_tag(everything, "team=pay")) == [pay]
    assert list(tags.filter_by_tag(everything, "team")) == [ops, pay]
    assert list(tags.filter_by_tag(everything, "aws:cloudformation:stack-name=x__y")) == [pay]
    assert list(tags.filter_by_tag(everything, "critical=")) == [pay]
    assert list(tags.filter_by_group(everything, "payments")) == [pay]
    assert tags.matches(pay.group, pay.tags, want_group="payments", want_tag="team=pay")
    assert not tags.matches(ops.group, ops.tags, want_tag="team=pay")
