"""The spend formula against hand-computed figures (us-east-1 prices of the shipped table:
Lambda $0.20 per million requests, $0.0000166667 per GB-s on x86_64 and $0.0000133334 on arm64;
SQS $0.40 per million standard, $0.50 FIFO; API Gateway $3.50 per million REST, $1.00 HTTP).
Pure functions on unsaved rows: no database, no AWS."""

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from pipelines.models import AwsAccount, Pipeline
from pipelines.spend import prices
from pipelines.spend.formula import Usage, cost, total
from pipelines.ui.spend import money

US_EAST_1 = prices.table().for_region("us-east-1")


def pipe(region="us-east-1", **overrides) -> Pipeline:
    fields = {
        "name": "orders",
        "account": AwsAccount(name="prod", region=region),
        "function_name": "orders-consumer",
        "function_memory_mb": 512,
        "function_architecture": "x86_64",
        "batch_size": 10,
    }
    fields.update(overrides)
    return Pipeline(**fields)


#: One day: 10,000 invocations of 200 ms on average, 100,000 messages through the queue.
DAY = Usage(
    hours=24,
    invocations=10_000,
    duration_ms=10_000 * 200,
    sent=100_000,
    received=100_000,
    deleted=100_000,
    empty_receives=1_000,
)


def test_it_prices_a_lambda_consumer_by_requests_and_gb_seconds():
    c = cost(pipe(), DAY, US_EAST_1)
    # 10,000 × $0.20/M = $0.002; 10,000 × 0.2 s × 0.5 GB = 1,000 GB-s × $0.0000166667 = $0.0166667
    assert c.parts["lambda"].amount == pytest.approx(0.0186667)
    # 100,000 sends + 100,000/10 receive batches + 1,000 empty receives + 100,000/10 delete batches
    # = 121,000 requests × $0.40/M = $0.0484
    assert c.parts["sqs"].amount == pytest.approx(0.0484)
    assert set(c.parts) == {"lambda", "sqs"}  # no API: no API part
    assert c.amount == pytest.approx(0.0670667) and c.complete
    # $0.0670667 / 100,000 delivered × 1,000
    assert c.per_thousand().amount == pytest.approx(0.000670667)


def test_it_prices_arm64_below_x86_64():
    c = cost(pipe(function_architecture="arm64"), DAY, US_EAST_1)
    # $0.002 + 1,000 GB-s × $0.0000133334 = $0.0153334
    assert c.parts["lambda"].amount == pytest.approx(0.0153334)


def test_it_prices_a_queue_without_a_consumer_one_request_per_message():
    p = pipe(function_name="", function_memory_mb=None, batch_size=None, dlq_url="http://h/1/orders-dlq")
    u = Usage(hours=24, sent=5_000, received=6_000, deleted=5_000, empty_receives=2_000)
    c = cost(p, u, US_EAST_1, polling=0.01)
    # 5,000 + 6,000 + 2,000 + 5,000 = 18,000 requests × $0.40/M = $0.0072; the DLQ is polled too,
    # which the polling part (given) carries.
    assert set(c.parts) == {"sqs", "polling"}
    assert c.parts["sqs"].amount == pytest.approx(0.0072)
    assert c.amount == pytest.approx(0.0172)
    # FIFO: 18,000 × $0.50/M
    assert cost(pipe(function_name="", is_fifo=True), u, US_EAST_1).parts["sqs"].amount == pytest.approx(0.009)


@pytest.mark.parametrize(("kind", "expected"), [("rest", 3.50), ("http", 1.00)])
def test_it_prices_api_requests_by_the_apis_kind(kind, expected):
    p = pipe(api_id="a1b2c3", api_kind=kind)
    c = cost(
        p,
        Usage(hours=24, invocations=0, duration_ms=None, sent=0, received=0, deleted=0, api_count=1_000_000),
        US_EAST_1,
    )
    assert c.parts["api"].amount == pytest.approx(expected)  # 1,000,000 requests × the kind's price per million


def test_an_undiscovered_memory_makes_lambda_unknown_not_zero():
    c = cost(pipe(function_memory_mb=None), DAY, US_EAST_1)
    assert c.parts["lambda"].amount is None and c.parts["lambda"].why == "memory not discovered"
    assert c.amount == pytest.approx(0.0484) and not c.complete
    assert money(c.per_thousand(), 4).startswith("≥ ")
    assert c.reasons == ["Lambda unknown: memory not discovered"]


def test_missing_metrics_make_their_part_unknown():
    c = cost(pipe(api_id="x", api_kind="rest"), Usage(hours=3), US_EAST_1)
    assert [k for k, part in c.parts.items() if part.amount is None] == ["lambda", "sqs", "api"]
    assert c.amount is None and money(c.per_thousand()) == "unknown"


def test_a_region_without_prices_is_unknown_not_priced_as_another():
    c = cost(pipe("ap-south-2"), DAY, prices.table().for_region("ap-south-2"))
    assert c.amount is None
    assert c.reasons[0] == "Lambda unknown: no prices for ap-south-2"


def test_days_add_up_and_a_partial_day_makes_the_sum_a_lower_bound():
    full = cost(pipe(), DAY, US_EAST_1)
    partial = cost(pipe(), Usage(hours=24, invocations=5, duration_ms=None, sent=1, received=1, deleted=1), US_EAST_1)
    both = total([full, partial])
    assert both.amount == pytest.approx(full.amount + partial.amount)
    assert not both.complete and both.delivered == 100_001
    assert money(both.per_thousand(), 4) == "≥ $0.0007"


def test_a_price_file_replaces_the_table(tmp_path, settings):
    path = tmp_path / "prices.json"
    data = json.loads(prices.SHIPPED.read_text())
    data["regions"] = {"ap-south-2": {**data["regions"]["us-east-1"], "sqs_standard_per_million": 1.0}}
    path.write_text(json.dumps(data))
    settings.SPEND_PRICES_FILE = str(path)
    table = prices.table()
    assert table.for_region("us-east-1") is None
    assert cost(pipe("ap-south-2"), DAY, table.for_region("ap-south-2")).parts["sqs"].amount == pytest.approx(0.121)
    path.write_text('{"regions": {"x": {"sqs_fifo_per_million": "cheap"}}}')
    settings.SPEND_PRICES_FILE = str(tmp_path / "other.json")
    (tmp_path / "other.json").write_text(path.read_text())
    with pytest.raises(ImproperlyConfigured, match="sqs_fifo"):
        prices.table()


def test_the_shipped_table_names_its_date_and_sources():
    table = prices.table()
    assert table.as_of and all(s.startswith("https://aws.amazon.com/") for s in table.sources)
    for region in (
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "eu-west-1",
        "eu-central-1",
        "ap-southeast-1",
        "ap-northeast-1",
    ):
        assert table.for_region(region).lambda_gb_second.keys() == {"x86_64", "arm64"}
