"""Incidents, trace lookups and pipeline registration on the audit trail: one entry per act, written
only when the act happened (an incident already acknowledged writes nothing more)."""

import pytest
from django.test import Client
from django.urls import reverse

from pipelines.alerting import incidents
from pipelines.models import AuditAction, AuditEntry, AuditThrough, AwsAccount, Incident, Pipeline
from tests.audit.support import ADDRESS, only, who
from tests.ui.test_admin import add_form
from tests.ui.test_incidents_ui import make_incident, make_pipeline
from tests.users import staff


def client_of(user) -> Client:
    client = Client(REMOTE_ADDR=ADDRESS)
    client.force_login(user)
    return client


@pytest.fixture
def orders(db):
    return make_pipeline(AwsAccount.objects.create(name="prod", region="us-east-1"), "orders")


# --- incidents -------------------------------------------------------------------------------------------


def test_it_audits_acknowledging_and_resolving_an_incident_by_button(orders):
    incident = make_incident(orders)
    oncall = client_of(staff("oncall", "view_pipeline", "view_incident", "change_incident"))
    for verb in ("acknowledge", "acknowledge", "resolve", "resolve"):  # each a second time: nothing to do
        oncall.post(reverse(f"admin:incident_{verb}", args=[incident.pk]))
    ack, resolved = only(AuditAction.INCIDENT_ACKNOWLEDGE), only(AuditAction.INCIDENT_RESOLVE)
    assert who(ack) == ("incident_ack", "ui", "oncall", "orders", ADDRESS)
    assert who(resolved) == ("incident_resolve", "ui", "oncall", "orders", ADDRESS)
    assert (ack.detail["incident"], ack.detail["rule"], ack.detail["by"]) == (incident.pk, "backlog", "oncall")


def test_it_audits_each_incident_an_admin_action_changed(root, orders):
    a, b = make_incident(orders), make_incident(make_pipeline(orders.account, "billing"))
    incidents.acknowledge(b, by="someone")  # already acknowledged: the action skips it
    AuditEntry.objects.all().delete()
    changelist = reverse("admin:pipelines_incident_changelist")
    root.post(changelist, {"action": "acknowledge_incidents", "_selected_action": [a.pk, b.pk]})
    assert who(only(AuditAction.INCIDENT_ACKNOWLEDGE)) == ("incident_ack", "ui", "root", "orders", ADDRESS)
    root.post(changelist, {"action": "resolve_incidents", "_selected_action": [a.pk, b.pk]})
    assert sorted(AuditEntry.objects.filter(action="incident_resolve").values_list("pipeline_name", flat=True)) == [
        "billing",
        "orders",
    ]


def test_it_audits_an_acknowledgement_from_a_process_as_the_system(orders):
    incident = make_incident(orders)
    assert incidents.acknowledge(incident, by="PagerDuty", through=AuditThrough.SYSTEM)
    entry = only(AuditAction.INCIDENT_ACKNOWLEDGE)
    assert (entry.through, entry.user, entry.detail["by"]) == ("system", None, "PagerDuty")
    assert Incident.objects.get().acknowledged_by == "PagerDuty"


# --- trace lookups ---------------------------------------------------------------------------------------


def test_it_audits_a_trace_lookup_with_its_id_and_scope(register):
    p = register("orders", api=True)
    tracer = client_of(staff("tracer", "lookup_trace"))  # may not peek: no DLQ is received from
    assert tracer.post(reverse("admin:trace"), {"id": "req-42", "pipeline": p.pk, "hours": 2}).status_code == 302
    entry = only(AuditAction.TRACE_LOOKUP)
    assert who(entry) == ("trace_lookup", "ui", "tracer", "orders", ADDRESS)
    assert (entry.detail["ident"], entry.detail["scope"], entry.detail["hours"]) == ("req-42", "orders", 2)
    AuditEntry.objects.all().delete()
    tracer.post(reverse("admin:trace"), {"id": "req-43", "pipeline": "", "hours": 1})
    everywhere = only(AuditAction.TRACE_LOOKUP)
    assert (everywhere.pipeline, everywhere.detail["scope"], everywhere.detail["ident"]) == (
        None,
        "all pipelines",
        "req-43",
    )


def test_it_audits_no_trace_lookup_for_a_form_that_did_not_run(register):
    tracer = client_of(staff("tracer", "lookup_trace"))
    tracer.get(reverse("admin:trace"), {"id": "req-42", "hours": 2})  # a link fills the form in
    tracer.post(reverse("admin:trace"), {"id": "", "hours": 2})  # invalid
    assert not AuditEntry.objects.exists()


# --- registering pipelines -------------------------------------------------------------------------------


def test_it_audits_each_pipeline_an_import_registers(root, account, build):
    build("orders")
    build("billing")
    res = root.post(reverse("admin:pipelines_awsaccount_import", args=[account.pk]), {"prefix": ""})
    assert res.status_code == 200 and Pipeline.objects.count() == 2
    entries = AuditEntry.objects.filter(action=AuditAction.PIPELINE_REGISTER).order_by("pipeline_name")
    assert [who(e) for e in entries] == [
        ("pipeline_register", "ui", "root", "billing", ADDRESS),
        ("pipeline_register", "ui", "root", "orders", ADDRESS),
    ]
    orders = Pipeline.objects.get(name="orders")
    assert entries[1].detail == {"queue_url": orders.queue_url, "account": "emulated", "imported": True}
    assert AuditEntry.objects.count() == 2  # the dry run below registers and audits nothing
    root.post(reverse("admin:pipelines_awsaccount_import", args=[account.pk]), {"prefix": "", "dry_run": "on"})
    assert AuditEntry.objects.count() == 2


def test_it_audits_a_pipeline_added_in_the_admin_as_a_registration(root, account, build):
    made = build("orders")
    assert root.post(reverse("admin:pipelines_pipeline_add"), add_form(account, made.queue_url)).status_code == 302
    entry = only(AuditAction.PIPELINE_REGISTER)
    assert who(entry) == ("pipeline_register", "ui", "root", "orders", ADDRESS)
    assert entry.detail["queue_url"] == made.queue_url and entry.detail["account"] == "emulated"
    assert entry.detail["model"] == "pipelines.pipeline" and entry.detail["object_id"] == str(entry.pipeline_id)
    assert not AuditEntry.objects.filter(action=AuditAction.OBJECT_ADD).exists()
