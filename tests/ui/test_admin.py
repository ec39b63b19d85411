"""The admin: login, registering pipelines with discovery and clear errors, actions, permissions."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from pipelines import aws
from pipelines.models import AwsAccount, Pipeline, PollCycle

ADD_URL = reverse("admin:pipelines_pipeline_add")


@pytest.fixture
def staff(db):
    return User.objects.create_superuser("admin", "admin@example.com", "pw-for-tests-1")


@pytest.fixture
def logged_in(client, staff):
    client.force_login(staff)
    return client


def add_form(account, queue_url, **extra):
    data = {
        "name": extra.pop("name", "orders"),
        "account": account.pk,
        "queue_url": queue_url,
        "api_kind": "",
        "api_id": "",
        "api_stage": "",
        "api_log_group": "",
        "consumer_log_group": "",
        "request_id_attribute": "requestId",
        "poll_interval": 60,
        "backlog_threshold": 1000,
        "oldest_age_sla": 900,
        "dlq_threshold": 1,
        "enabled": "on",
    }
    data.update(extra)
    return data


def test_the_admin_requires_login(client, db):
    res = client.get(reverse("admin:pipelines_pipeline_changelist"))
    assert res.status_code == 302 and reverse("admin:login") in res["Location"]
    assert client.get("/").status_code == 302


def test_custom_permissions_are_declared(db):
    codes = set(Permission.objects.filter(content_type__app_label="pipelines").values_list("codename", flat=True))
    assert {"redrive_dlq", "view_message_bodies", "lookup_trace"} <= codes


def test_adding_a_pipeline_discovers_it(logged_in, account, build):
    made = build("orders", api=True)
    res = logged_in.post(ADD_URL, add_form(account, made.queue_url, api_id=made.api_id, api_stage="prod"))
    assert res.status_code == 302, res.content.decode()[:2000]
    p = Pipeline.objects.get(name="orders")
    assert p.dlq_arn == made.dlq_arn and p.function_name == "orders-consumer" and p.api_kind == "rest"
    assert p.api_name == "orders-api" and p.discovered_at is not None
    page = logged_in.get(reverse("admin:pipelines_pipeline_change", args=[p.pk])).content.decode()
    assert "orders-consumer" in page and "Discovered from AWS" in page and "/month" in page


@pytest.mark.parametrize(
    "queue_url, message",
    [
        ("sqs://nope", "Enter a queue URL"),
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/orders", "This queue is in eu-west-1"),
        ("{emulator}/123456789012/ghost", "No queue exists at"),
    ],
)
def test_bad_queue_urls_give_a_form_error_and_save_nothing(logged_in, account, emulator, queue_url, message):
    res = logged_in.post(ADD_URL, add_form(account, queue_url.format(emulator=emulator.url)))
    assert res.status_code == 200
    assert message in res.content.decode()
    assert not Pipeline.objects.exists()


def test_an_unreachable_endpoint_gives_a_form_error(logged_in, db):
    dead = AwsAccount.objects.create(name="down", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    res = logged_in.post(ADD_URL, add_form(dead, "http://127.0.0.1:9/123456789012/orders"))
    assert res.status_code == 200 and "cannot reach the AWS endpoint" in res.content.decode()
    assert not Pipeline.objects.exists()


def test_access_denied_gives_a_form_error(logged_in, build, proxied_account, fault_proxy):
    made = build("orders")
    fault_proxy.rule = lambda req: "deny"
    res = logged_in.post(ADD_URL, add_form(proxied_account, made.queue_url))
    assert res.status_code == 200 and "Access denied" in res.content.decode()
    assert not Pipeline.objects.exists()


def test_a_wrong_api_id_is_an_error_on_that_field(logged_in, account, build):
    made = build("orders")
    res = logged_in.post(ADD_URL, add_form(account, made.queue_url, api_id="abc123", api_stage="prod"))
    assert res.status_code == 200 and "No REST API with id" in res.content.decode()
    assert not Pipeline.objects.exists()


def test_a_queue_without_dlq_or_consumer_registers_with_that_shown(logged_in, account, build):
    made = build("bare", dlq=False, consumer=False)
    res = logged_in.post(ADD_URL, add_form(account, made.queue_url, name="bare"), follow=True)
    page = res.content.decode()
    assert "has no dead-letter queue" in page and "no Lambda event-source mapping" in page
    assert Pipeline.objects.get(name="bare").dlq_url == ""


def test_the_same_queue_cannot_be_registered_twice(logged_in, account, build):
    made = build("orders")
    assert logged_in.post(ADD_URL, add_form(account, made.queue_url)).status_code == 302
    res = logged_in.post(ADD_URL, add_form(account, made.queue_url, name="orders-again"))
    assert res.status_code == 200 and "already registered" in res.content.decode()


def test_the_list_shows_health_and_numbers(logged_in, register, account):
    register("orders")
    logged_in.post(
        reverse("admin:pipelines_pipeline_changelist"),
        {"action": "sync_now", "_selected_action": [Pipeline.objects.get().pk]},
        follow=True,
    )
    page = logged_in.get(reverse("admin:pipelines_pipeline_changelist")).content.decode()
    assert "ob-badge" in page and ">OK<" in page and "orders-consumer" in page
    assert PollCycle.objects.filter(kind="fast").exists()
    assert logged_in.get(reverse("admin:pipelines_pollcycle_changelist")).status_code == 200


def test_refresh_from_aws_rereads_the_configuration(logged_in, register, target):
    import json

    p = register("orders")
    aws.client(target, "sqs").set_queue_attributes(
        QueueUrl=p.queue_url,
        Attributes={
            "VisibilityTimeout": "900",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": p.dlq_arn, "maxReceiveCount": "9"}),
        },
    )
    res = logged_in.post(
        reverse("admin:pipelines_pipeline_changelist"),
        {"action": "refresh_from_aws", "_selected_action": [p.pk]},
        follow=True,
    )
    assert "Refreshed 1 pipeline" in res.content.decode()
    p.refresh_from_db()
    assert p.visibility_timeout == 900 and p.max_receive_count == 9


def test_import_view_registers_queues(logged_in, account, build):
    build("alpha")
    build("lonely", dlq=False)
    url = reverse("admin:pipelines_awsaccount_import", args=[account.pk])
    page = logged_in.post(url, {"prefix": "", "dry_run": "on"}).content.decode()
    assert "Would register" in page and "alpha" in page and not Pipeline.objects.exists()
    page = logged_in.post(url, {"prefix": ""}).content.decode()
    assert "has no dead-letter queue" in page
    assert list(Pipeline.objects.values_list("name", flat=True)) == ["alpha"]


def test_staff_without_permissions_cannot_see_pipelines(client, account):
    user = User.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:pipelines_pipeline_changelist")).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_pipeline"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(reverse("admin:pipelines_pipeline_changelist")).status_code == 200
    assert client.get(ADD_URL).status_code == 403
    assert client.get(reverse("admin:pipelines_awsaccount_import", args=[account.pk])).status_code == 302


def test_it_refuses_the_same_queue_under_another_url_and_says_what_to_enter(logged_in, account, build, emulator):
    made = build("orders")
    assert logged_in.post(ADD_URL, add_form(account, made.queue_url)).status_code == 302
    res = logged_in.post(ADD_URL, add_form(account, f"{emulator.url}/999999999999/orders", name="orders-999"))
    page = res.content.decode()
    assert res.status_code == 200 and "The queue URL names AWS account 999999999999" in page
    assert f"enter {emulator.url}/123456789012/orders" in page
    assert Pipeline.objects.count() == 1


def test_it_shows_the_change_page_figures_in_words(logged_in, register):
    p = register("orders", visibility_timeout=200)
    Pipeline.objects.filter(pk=p.pk).update(
        backlog=12345, oldest_age=7200, drain_rate=0.004156064461407973, time_to_loss=5400, time_to_loss_known=True
    )
    page = logged_in.get(reverse("admin:pipelines_pipeline_change", args=[p.pk])).content.decode()
    for raw in ("0.004156064461407973", "345600", "1209600", "7200", ">200<", "5400"):
        assert raw not in page
    for words in ("4 days", "14 days", "200 s", "30 s", "12,345", "2.0 h", "steady", "in 1.5 h"):
        assert words in page, words


def test_it_refuses_to_refresh_a_pipeline_into_a_queue_another_pipeline_has(logged_in, register, account, emulator):
    p = register("orders")
    # A duplicate as the upgrade leaves it: disabled, its ARN cleared, on a second account.
    twin = AwsAccount.objects.create(name="twin", region="us-east-1", endpoint_url=emulator.url)
    dup = Pipeline.objects.create(name="orders-twin", account=twin, queue_url=p.queue_url, enabled=False)
    res = logged_in.post(
        reverse("admin:pipelines_pipeline_changelist"),
        {"action": "refresh_from_aws", "_selected_action": [dup.pk, p.pk]},
        follow=True,
    )
    page = res.content.decode()
    assert "Refreshed 1 pipeline" in page and "already registered as pipeline" in page
    dup.refresh_from_db()
    assert dup.queue_arn == "" and Pipeline.objects.get(name="orders").queue_arn == p.queue_arn
