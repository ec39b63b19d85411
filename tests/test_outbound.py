"""The outbound address policy: webhooks and AWS endpoint URLs may not lead opsboard to loopback, the
metadata service or private networks, checked on the address actually connected to; what answered is
never shown to the operator.

Real HTTP servers on 127.0.0.1 stand for the internal services; the suite's settings allow loopback, so
each test that exercises the policy empties OUTBOUND_ALLOWED_NETWORKS first.
"""

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from pipelines import aws, outbound
from pipelines.alerting import deliveries
from pipelines.models import AwsAccount, ChannelKind, DeliveryStatus, NotificationChannel
from tests.test_settings import PROD, run_manage

REGION = "us-east-1"
SECRET = b"SECRET-INTERNAL-42 db password hunter2"
POLICY = "outbound address policy; add the network to OUTBOUND_ALLOWED_NETWORKS to allow it."
LOOPBACK_REFUSED = f"opsboard refuses to connect to 127.0.0.1 (loopback address): {POLICY}"
CHANNELS = reverse("admin:pipelines_notificationchannel_changelist")


# --- an internal service on loopback --------------------------------------------------------------------


class Internal(ThreadingHTTPServer):
    """Counts the connections it accepts and the requests it reads; answers each with `reply`."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.requests: list[str] = []
        self.reply = (200, b"{}")

    def verify_request(self, request, client_address):
        self.connections += 1
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def settled_connections(self) -> int:
        """The connections accepted, once the accept loop has caught up."""
        time.sleep(0.3)
        return self.connections


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(self.path)
        status, body = self.server.reply
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def internal():
    server = Internal()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_allow_list(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.fixture
def fresh_clients(monkeypatch):
    """No cached boto3 client and no AWS_ENDPOINT_URL left over from the emulator's tests."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws.reset_clients()
    yield
    aws.reset_clients()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def send_test_action(admin_client, channel) -> list[str]:
    res = admin_client.post(CHANNELS, {"action": "send_test_action", "_selected_action": [channel.pk]}, follow=True)
    return messages_of(res)


# --- the classifier -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, kind",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("fd00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "reserved"),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_it_refuses_every_non_public_address_and_only_those(address, kind, no_allow_list):
    assert outbound.classify(ipaddress.ip_address(address)) == kind
    if kind is None:
        outbound.check_address(address)
    else:
        with pytest.raises(outbound.Refused) as refused:
            outbound.check_address(address)
        assert str(refused.value) == f"opsboard refuses to connect to {address} ({kind} address): {POLICY}"


def test_the_allow_list_lets_exactly_its_networks_through(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.1.0.0/16", "::1/128", "192.168.1.5/32"]
    for address in ("10.1.2.3", "10.1.255.255", "::1", "192.168.1.5", "::ffff:10.1.2.3"):
        outbound.check_address(address)
    for address in ("10.2.0.1", "10.0.255.255", "127.0.0.1", "192.168.1.6", "169.254.169.254", "fd00::1"):
        with pytest.raises(outbound.Refused):
            outbound.check_address(address)


# --- webhooks -------------------------------------------------------------------------------------------


def test_a_webhook_on_loopback_is_refused_before_any_request(admin_client, internal, no_allow_list, settings):
    hook = NotificationChannel.objects.create(name="internal", kind=ChannelKind.WEBHOOK, target=f"{internal.url}/x")
    said = send_test_action(admin_client, hook)
    assert said == [f"internal: the test notification failed: {LOOPBACK_REFUSED}"]
    assert internal.requests == []

    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert send_test_action(admin_client, hook) == ["internal: test notification sent."]
    assert internal.requests == ["/x"]


def test_a_refused_delivery_is_not_retried(db, internal, no_allow_list):
    hook = NotificationChannel.objects.create(name="internal", kind=ChannelKind.SLACK, target=f"{internal.url}/x")
    delivery = deliveries.send_test(hook)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempt_count == 1
    assert delivery.last_error == LOOPBACK_REFUSED and internal.requests == []


def test_the_answer_of_a_failing_webhook_is_never_shown(admin_client, internal):
    internal.reply = (500, SECRET)
    hook = NotificationChannel.objects.create(name="hook", kind=ChannelKind.WEBHOOK, target=f"{internal.url}/x")
    said = send_test_action(admin_client, hook)
    assert said == ["hook: the test notification failed: HTTP 500 Internal Server Error"]
    assert internal.requests == ["/x"]  # it was asked, and what it said stays out of opsboard
    page = admin_client.get(reverse("admin:pipelines_delivery_changelist")).content.decode()
    assert "HTTP 500" in page and "SECRET" not in page


def test_the_channel_form_refuses_a_host_that_resolves_to_loopback(admin_client, internal, no_allow_list):
    res = admin_client.post(
        reverse("admin:pipelines_notificationchannel_add"),
        {"name": "ops", "kind": "webhook", "target": f"http://localhost:{internal.server_address[1]}/x"},
    )
    page = res.content.decode()
    assert res.status_code == 200 and "opsboard refuses to connect to" in page and "(loopback address)" in page
    assert "localhost resolves to" in page and not NotificationChannel.objects.exists()


def test_a_name_that_turns_to_loopback_after_it_was_checked_is_refused_at_connect(
    admin_client, internal, no_allow_list, monkeypatch
):
    answers = {"hooks.example.test": "93.184.215.14"}  # public when the form checks it
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        return real(answers.get(host, host), port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    res = admin_client.post(
        reverse("admin:pipelines_notificationchannel_add"),
        {
            "name": "rebinding",
            "kind": "webhook",
            "target": f"http://hooks.example.test:{internal.server_address[1]}/x",
            "enabled": "on",
            "min_severity": "warning",
        },
    )
    assert res.status_code == 302  # the early check saw a public address
    answers["hooks.example.test"] = "127.0.0.1"  # DNS rebinding: the name now answers with loopback
    delivery = deliveries.send_test(NotificationChannel.objects.get())
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_error == LOOPBACK_REFUSED
    assert internal.requests == []


# --- AWS endpoint URLs -----------------------------------------------------------------------------------


def import_page(admin_client, account) -> str:
    url = reverse("admin:pipelines_awsaccount_import", args=[account.pk])
    res = admin_client.post(url, {"prefix": "", "dry_run": "on"})
    assert res.status_code == 200
    return res.content.decode()


def test_an_account_endpoint_on_loopback_is_refused_once_and_sent_nothing(
    admin_client, internal, no_allow_list, fresh_clients
):
    account = AwsAccount.objects.create(name="internal", region=REGION, endpoint_url=internal.url)
    page = import_page(admin_client, account)
    assert f"Could not list the queues of internal ({REGION}): listing queues: {LOOPBACK_REFUSED}" in page
    assert internal.requests == []  # no signed request, no credentials
    assert internal.settled_connections() == 1  # refused, not retried as a network fault


def test_the_answer_of_a_custom_endpoint_is_never_shown(admin_client, internal, fresh_clients):
    internal.reply = (500, SECRET)
    account = AwsAccount.objects.create(name="internal", region=REGION, endpoint_url=internal.url)
    page = import_page(admin_client, account)
    assert internal.requests  # allowed by the suite's list: asked, and its answer kept out of the page
    assert "listing queues: 500 (HTTP 500 from the endpoint)." in page and "SECRET" not in page


def test_a_role_is_never_assumed_through_a_refused_endpoint(internal, no_allow_list, fresh_clients):
    target = aws.Target(region=REGION, role_arn="arn:aws:iam::123456789012:role/opsboard", endpoint_url=internal.url)
    with pytest.raises(aws.AwsError) as refused:
        aws.list_queue_urls(target)
    assert refused.value.code == aws.REFUSED and LOOPBACK_REFUSED in str(refused.value)
    assert str(refused.value).startswith("assuming role arn:aws:iam::123456789012:role/opsboard: ")
    assert internal.requests == []


def test_aws_endpoint_url_from_the_environment_is_policed_too(internal, no_allow_list, fresh_clients, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", internal.url)
    with pytest.raises(aws.AwsError) as refused:
        aws.list_queue_urls(aws.Target(region=REGION))
    assert refused.value.code == aws.REFUSED and str(refused.value) == f"listing queues: {LOOPBACK_REFUSED}"
    assert internal.requests == []


def test_aws_own_endpoints_are_exempt(internal, no_allow_list, fresh_clients, settings, monkeypatch):
    """In a VPC, AWS's endpoints may resolve to private interface-endpoint addresses: not refused."""
    settings.AWS_MAX_ATTEMPTS = 1
    real = socket.getaddrinfo

    def vpc(host, port, *args, **kwargs):  # the loopback server stands for the interface endpoint
        if host.endswith(".amazonaws.com"):
            return real("127.0.0.1", internal.server_address[1], *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", vpc)
    with pytest.raises(aws.AwsError) as failed:
        aws.list_queue_urls(aws.Target(region=REGION))
    # It connected and began TLS with a server that speaks none: the policy let it through.
    assert failed.value.code != aws.REFUSED and "refuses" not in str(failed.value)
    assert internal.settled_connections() == 1


def test_the_account_form_refuses_an_endpoint_on_loopback(admin_client, no_allow_list, settings):
    add = reverse("admin:pipelines_awsaccount_add")
    form = {"name": "lab", "region": REGION, "endpoint_url": "http://127.0.0.1:4566"}
    res = admin_client.post(add, form)
    assert res.status_code == 200 and LOOPBACK_REFUSED in res.content.decode()
    assert not AwsAccount.objects.exists()

    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert admin_client.post(add, form).status_code == 302
    assert AwsAccount.objects.get().endpoint_url == "http://127.0.0.1:4566"


def test_with_the_allow_list_the_emulator_account_works(admin_client, account, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    aws.reset_clients()
    page = import_page(admin_client, account)
    assert "would register 0 pipeline(s)" in page and "refuses" not in page


# --- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["10.0.0.0/8,intranet", "10.0.0.1/8", "300.1.2.3"])
def test_a_bad_allowed_network_stops_with_a_sentence(value):
    res = run_manage("check", env_overrides={**PROD, "OUTBOUND_ALLOWED_NETWORKS": value})
    assert res.returncode != 0 and "Traceback" not in res.stderr
    bad = value.split(",")[-1]
    assert f"OUTBOUND_ALLOWED_NETWORKS holds {bad!r}, which is not an IP address or network" in res.stderr


def test_a_custom_endpoint_behind_an_environment_proxy_is_refused(internal, fresh_clients, monkeypatch):
    # Through a proxy the policy would judge the proxy's address, not the endpoint's: refuse, and say how to fix it.
    monkeypatch.setenv("HTTP_PROXY", internal.url)
    monkeypatch.setenv("HTTPS_PROXY", internal.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(aws.AwsError) as refused:
        aws.list_queue_urls(aws.Target(region=REGION, endpoint_url="http://198.51.100.7:4566"))
    assert refused.value.code == "OutboundProxied" and "NO_PROXY" in str(refused.value)
    assert internal.requests == []
