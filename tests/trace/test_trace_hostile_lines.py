"""Consumer log lines are written by the function being traced, not by opsboard: a line whose invocation
id field holds filter-pattern syntax is read as carrying no id, and the lookup still answers."""

import json
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.trace import logs, lookup
from tests.trace.test_trace import access, put, run


@pytest.mark.parametrize(
    "value",
    [" ?ERROR ", '"x"', "a b", "", "x" * 129, {"nested": 1}, ["a"], None, 0, False],
)
def test_it_reads_an_invalid_invocation_id_in_a_json_line_as_no_id(value):
    assert logs.invocation_in_line(json.dumps({"aws_request_id": value, "correlation_id": "r-1"})) == ""


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(["function_request_id", "aws_request_id", "awsRequestId", "lambda_request_id"]),
    value=JSON_VALUES,
)
def test_any_invocation_id_read_from_a_line_is_one_that_can_be_searched_for(key, value):
    inv = logs.invocation_in_line(json.dumps({key: value}))
    assert inv == "" or logs.clean_id(inv) == inv


def test_it_still_reads_a_valid_invocation_id_from_a_json_line():
    inv = str(uuid.uuid4())
    assert logs.invocation_in_line(json.dumps({"aws_request_id": f" {inv} "})) == inv
    assert logs.invocation_in_line(json.dumps({"awsRequestId": " ?ERROR ", "lambda_request_id": inv})) == inv


def test_an_all_pipelines_lookup_answers_when_a_consumer_line_carries_a_hostile_invocation_id(register, target):
    orders = register("orders", api=True)
    other = register("billing", api=True)
    rid = str(uuid.uuid4())
    at = int(time.time() * 1000) - 50_000
    access(target, orders, rid)
    inv = str(uuid.uuid4())
    lines = [
        f"START RequestId: {inv} Version: $LATEST",
        json.dumps({"level": "INFO", "aws_request_id": " ?ERROR ", "correlation_id": rid}),
        f"END RequestId: {inv}",
    ]
    put(target, orders.consumer_log_group, f"2026/01/01/[$LATEST]{inv[:8]}", lines, at)
    result = run(rid, [orders, other])
    assert result["pipelines"] == ["orders", "billing"]
    attempts = [e for e in result["timeline"] if e["kind"] == "invocation"]
    # The line is placed by its stream's START, as a line without an id is.
    assert [a["invocation_id"] for a in attempts] == [inv]
    assert result["verdict"] == "processed"
    assert lookup.MAX_CALLS >= result["log_calls"]
