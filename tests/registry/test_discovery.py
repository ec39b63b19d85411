"""Discovery against the emulator: queue, DLQ, consumer mapping, function; and every bad input."""

import pytest

from pipelines import aws
from pipelines.models import Pipeline
from pipelines.registry.discovery import DiscoveryError, discover, import_queues, parse_queue_url


def test_it_discovers_queue_dlq_and_disabled_consumer(target, build):
    made = build(
        "orders",
        reserved_concurrency=7,
        maximum_concurrency=4,
        max_receive_count=6,
        visibility_timeout=200,
        retention_period=86400,
    )
    found = discover(target, made.queue_url)
    f = found.fields
    assert f["queue_arn"] == made.queue_arn and f["queue_name"] == "orders" and f["is_fifo"] is False
    assert f["visibility_timeout"] == 200 and f["retention_period"] == 86400
    assert f["dlq_url"] == made.dlq_url and f["dlq_arn"] == made.dlq_arn
    assert f["max_receive_count"] == 6 and f["dlq_retention_period"] == 1209600
    assert f["function_name"] == "orders-consumer" and f["function_timeout"] == 30
    assert f["reserved_concurrency"] == 7 and f["batch_size"] == 10 and f["maximum_concurrency"] == 4
    assert f["report_batch_item_failures"] is True and f["mapping_state"] == "Disabled"
    assert found.warnings == []


def test_it_discovers_fifo_queues(target, build):
    made = build("payments", fifo=True)
    f = discover(target, made.queue_url).fields
    assert f["is_fifo"] is True and f["queue_name"] == "payments.fifo"
    assert f["dlq_arn"].endswith("payments-dlq.fifo")


def test_it_registers_a_queue_without_dlq_or_consumer(target, build):
    made = build("bare", dlq=False, consumer=False)
    f = discover(target, made.queue_url).fields
    assert f["dlq_url"] == "" and f["max_receive_count"] is None
    assert f["function_name"] == "" and f["mapping_state"] == ""


def test_it_reads_the_api_name_and_checks_the_stage(target, build):
    made = build("web", api=True)
    assert discover(target, made.queue_url, "rest", made.api_id, "prod").fields["api_name"] == "web-api"
    with pytest.raises(DiscoveryError, match="no stage 'staging'") as err:
        discover(target, made.queue_url, "rest", made.api_id, "staging")
    assert err.value.field == "api_stage"
    with pytest.raises(DiscoveryError, match="No REST API") as err:
        discover(target, made.queue_url, "rest", "nope123", "prod")
    assert err.value.field == "api_id"


@pytest.mark.parametrize(
    "url, message",
    [
        ("not a url", "Enter a queue URL"),
        ("ftp://sqs.us-east-1.amazonaws.com/123456789012/q", "Enter a queue URL"),
        ("https://sqs.us-east-1.amazonaws.com/123456789012", "ends in /<12-digit account id>/<queue name>"),
        ("https://sqs.us-east-1.amazonaws.com/12345/q", "12-digit AWS account id"),
        ("https://sqs.us-east-1.amazonaws.com/123456789012/bad%20name", "not a valid SQS queue name"),
        ("https://sqs.us-east-1.amazonaws.com/123456789012/" + "x" * 81, "not a valid SQS queue name"),
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "in eu-west-1, but the account is set to us-east-1"),
        ("https://s3.amazonaws.com/123456789012/q", "not an SQS endpoint host"),
    ],
)
def test_it_rejects_malformed_or_foreign_urls(url, message):
    with pytest.raises(DiscoveryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_queue_url(url, "us-east-1")


def test_it_names_a_nonexistent_queue(target, emulator):
    with pytest.raises(DiscoveryError, match="No queue exists at"):
        discover(target, f"{emulator.url}/123456789012/ghost")


def test_it_names_an_unreachable_endpoint():
    dead = aws.Target(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(DiscoveryError, match="cannot reach the AWS endpoint"):
        discover(dead, "http://127.0.0.1:9/123456789012/q")


def test_it_names_access_denied(target, build, fault_proxy):
    made = build("secret")
    fault_proxy.rule = lambda req: "deny" if req.operation == "GetQueueAttributes" else ""
    proxied = aws.Target(region="us-east-1", endpoint_url=fault_proxy.url)
    with pytest.raises(DiscoveryError, match="Access denied"):
        discover(proxied, made.queue_url)


def test_it_imports_queues_that_have_a_dlq(account, build):
    build("alpha")
    build("beta", fifo=True)
    build("lonely", dlq=False)
    result = import_queues(account)
    assert sorted(result.created) == ["alpha", "beta.fifo"]
    reasons = {url.rsplit("/", 1)[-1]: why for url, why in result.skipped}
    assert reasons == {
        "alpha-dlq": "is a dead-letter queue",
        "beta-dlq.fifo": "is a dead-letter queue",
        "lonely": "has no dead-letter queue",
    }
    alpha = Pipeline.objects.get(name="alpha")
    assert alpha.function_name == "alpha-consumer" and alpha.consumer_log_group == "/aws/lambda/alpha-consumer"
    again = import_queues(account)
    assert again.created == []
    assert "already registered as pipeline 'alpha' on emulated (us-east-1)" in dict(again.skipped).values()


def test_it_tells_whether_the_api_passes_the_request_id(target, build):
    made = build("web", api=True)
    found = discover(target, made.queue_url, "rest", made.api_id, "prod")
    assert found.fields["api_passes_request_id"] is True and found.warnings == []
    # An integration whose template drops the id: discovery says traces cannot link the two.
    apigw = aws.client(target, "apigateway")
    root = [r for r in apigw.get_resources(restApiId=made.api_id)["items"] if r["path"] == "/"][0]["id"]
    apigw.put_integration(
        restApiId=made.api_id,
        resourceId=root,
        httpMethod="POST",
        type="AWS",
        integrationHttpMethod="POST",
        uri="arn:aws:apigateway:us-east-1:sqs:path/123456789012/web",
        requestTemplates={"application/json": "Action=SendMessage&MessageBody=$input.body"},
    )
    found = discover(target, made.queue_url, "rest", made.api_id, "prod")
    assert found.fields["api_passes_request_id"] is False
    assert "does not pass $context.requestId" in found.warnings[0]
    # The pipeline names another attribute than the one the integration fills: not linked either.
    other = build("web2", api=True)
    assert (
        discover(target, other.queue_url, "rest", other.api_id, "prod", "traceId").fields["api_passes_request_id"]
        is False
    )
    # No API named: nothing to judge.
    assert discover(target, other.queue_url).fields["api_passes_request_id"] is None


def test_passes_request_id_reads_rest_and_http_mappings():
    from pipelines.registry.discovery import passes_request_id

    rest = (
        "Action=SendMessage&MessageAttribute.1.Name=requestId&MessageAttribute.1.Value.StringValue=$context.requestId"
    )
    http = '{"MessageAttributes": "{\\"traceId\\": {\\"DataType\\": \\"String\\", \\"StringValue\\": \\"${context.requestId}\\"}}"}'
    assert passes_request_id([rest], "requestId") is True
    assert passes_request_id([http], "traceId") is True
    assert passes_request_id([http], "requestId") is False
    assert passes_request_id([], "requestId") is None
