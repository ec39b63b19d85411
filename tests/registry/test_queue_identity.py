"""Which hosts and account ids belong to an account: pure rules, checked without AWS."""

import pytest

from pipelines.registry.discovery import DiscoveryError, parse_queue_url
from pipelines.registry.identity import Reach, url_problem

AWS = Reach(account_id="123456789012", region="us-east-1", endpoint="https://sqs.us-east-1.amazonaws.com")
EMULATOR = Reach(account_id="123456789012", region="us-east-1", endpoint="http://127.0.0.1:5000")


@pytest.mark.parametrize(
    "host",
    [
        "sqs.us-east-1.amazonaws.com",
        "us-east-1.queue.amazonaws.com",
        "sqs-fips.us-east-1.amazonaws.com",
        "sqs.us-east-1.api.aws",
        "vpce-0a1b2c3d4e5f67890-abcdefgh.sqs.us-east-1.vpce.amazonaws.com",
        "vpce-0a1b2c3d4e5f67890-abcdefgh-us-east-1a.sqs.us-east-1.vpce.amazonaws.com",
    ],
)
def test_it_accepts_every_sqs_host_of_the_accounts_region(host):
    assert url_problem(parse_queue_url(f"https://{host}/123456789012/orders", "us-east-1"), AWS) == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000/123456789012/orders",
        "https://sqs.us-east-1.amazonaws.com.evil.example/123456789012/orders",
    ],
)
def test_it_refuses_a_host_that_is_not_aws_for_an_aws_account(url):
    assert url_problem(parse_queue_url(url, "us-east-1"), AWS) == (
        f"The queue URL's host {url.split('/')[2]} is not an SQS endpoint of us-east-1. "
        "This account is 123456789012 in us-east-1: enter https://sqs.us-east-1.amazonaws.com/123456789012/orders."
    )


def test_it_refuses_another_account_id_with_the_url_to_enter():
    url = parse_queue_url("https://sqs.us-east-1.amazonaws.com/999999999999/orders", "us-east-1")
    assert url_problem(url, AWS) == (
        "The queue URL names AWS account 999999999999. This account is 123456789012 in us-east-1: "
        "enter https://sqs.us-east-1.amazonaws.com/123456789012/orders, "
        "or register the queue under an AWS account for 999999999999."
    )


def test_it_names_a_vpc_endpoint_queue_in_another_region():
    with pytest.raises(DiscoveryError, match="This queue is in eu-west-1, but the account is set to us-east-1"):
        parse_queue_url("https://vpce-0a1b-xyz.sqs.eu-west-1.vpce.amazonaws.com/123456789012/orders", "us-east-1")


@pytest.mark.parametrize(
    "url, ok",
    [
        ("http://127.0.0.1:5000/123456789012/orders", True),
        ("http://127.0.0.1:5000/123456789012/orders.fifo", True),
        ("http://127.0.0.1:1/123456789012/orders", False),
        ("http://localhost:5000/123456789012/orders", False),
        ("https://sqs.us-east-1.amazonaws.com/123456789012/orders", False),
    ],
)
def test_it_accepts_only_the_emulators_own_host_and_port(url, ok):
    assert (url_problem(parse_queue_url(url, "us-east-1"), EMULATOR) == "") is ok


def test_it_accepts_the_regional_hosts_an_emulator_reports():
    localstack = Reach(account_id="000000000000", region="us-east-1", endpoint="http://localhost.localstack.cloud:4566")
    for host in ("localhost.localstack.cloud", "sqs.us-east-1.localhost.localstack.cloud"):
        url = parse_queue_url(f"http://{host}:4566/000000000000/orders", "us-east-1")
        assert url_problem(url, localstack) == ""
    other_region = parse_queue_url("http://sqs.eu-west-1.localhost.localstack.cloud:4566/000000000000/q", None)
    assert url_problem(other_region, localstack) != ""


def test_it_suggests_the_china_partitions_host():
    china = Reach(account_id="123456789012", region="cn-north-1", endpoint="https://sqs.cn-north-1.amazonaws.com.cn")
    assert china.queue_url("123456789012", "orders") == "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/orders"
