"""Failure signatures from hand-made consumer lines: what varies between messages is ignored, what
names the fault is kept, Python and Node both read, and bodies without a failure grouped by shape."""

import json

from pipelines.dlq import signatures
from pipelines.dlq.signatures import shape_signature, short_title, signature_of

INV = "0b2c1a6e-1111-2222-3333-444455556666"


def py_traceback(last_line: str, frame_line: int = 41, func: str = "load_customer") -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/var/task/handler.py", line 12, in handler\n    process(record)\n'
        f'  File "/var/task/orders.py", line {frame_line}, in {func}\n    return body["customer_id"]\n'
        f"{last_line}"
    )


def json_line(error: str, message_id: str = "m-1", **extra) -> str:
    return json.dumps({"level": "ERROR", "message": "message failed", "messageId": message_id, "error": error, **extra})


def test_it_gives_the_same_failure_with_different_numbers_and_ids_one_signature():
    a = signature_of(json_line("ValueError: order 48213 amount -3 is negative", "id-1"))
    b = signature_of(json_line("ValueError: order 10007 amount -250.5 is negative", "id-2"))
    assert a == b
    assert a.title == "ValueError: order <n> amount <n> is negative"


def test_it_normalises_uuids_hex_ids_tokens_emails_timestamps_and_quoted_values():
    line = (
        "ConnectionError: customer 3f2b8c1e-9a4d-4e5f-8a7b-1c2d3e4f5a6b (ab12cd34ef56) for ann@example.com "
        "at 2026-01-05T10:00:00Z with token AbCdEf0123456789XyZ0aa rejected 'gold'"
    )
    other = (
        "ConnectionError: customer 00000000-1111-2222-3333-444444444444 (ffee99887766) for bob@example.org "
        "at 2026-02-07 11:12:13 with token Zz9988776655443322110x rejected 'silver'"
    )
    assert signature_of(line) == signature_of(other)
    assert signature_of(line).title == (
        "ConnectionError: customer <uuid> (<hex>) for <email> at <time> with token <token> rejected '<str>'"
    )


def test_it_keeps_the_missing_key_of_a_key_error():
    a = signature_of(json_line("KeyError: 'customer_id'"), py_traceback("KeyError: 'customer_id'"))
    b = signature_of(json_line("KeyError: 'order_id'"), py_traceback("KeyError: 'order_id'"))
    assert a != b
    assert short_title(a.title) == "KeyError: 'customer_id'"
    assert signature_of("AttributeError: 'NoneType' object has no attribute 'items'").title == (
        "AttributeError: 'NoneType' object has no attribute 'items'"
    )
    # A quoted value that is not a bare identifier is still a value.
    assert signature_of("KeyError: 'customer 42'").title == "KeyError: '<str>'"


def test_it_makes_different_exceptions_different_groups():
    key = signature_of(json_line("KeyError: 'customer_id'"))
    value = signature_of(json_line("ValueError: 'customer_id'"))
    timeout = signature_of(json_line("TimeoutError: downstream service did not answer"))
    assert len({key.digest, value.digest, timeout.digest}) == 3


def test_it_reads_the_last_frame_of_a_python_traceback_without_its_line_number():
    before = signature_of(json_line("KeyError: 'customer_id'"), py_traceback("KeyError: 'customer_id'", 41))
    after_deploy = signature_of(json_line("KeyError: 'customer_id'"), py_traceback("KeyError: 'customer_id'", 57))
    elsewhere = signature_of(json_line("KeyError: 'customer_id'"), py_traceback("KeyError: 'customer_id'", 41, "bill"))
    assert before == after_deploy and before != elsewhere
    assert before.title == "KeyError: 'customer_id' — in /var/task/orders.py in load_customer"


def test_it_reads_the_python_runtime_line_of_an_unhandled_exception():
    line = f"[ERROR]\t2026-01-05T10:00:00.000Z\t{INV}\tKeyError: 'customer_id'\n" + py_traceback(
        "KeyError: 'customer_id'"
    )
    assert signature_of(line).title == "KeyError: 'customer_id' — in /var/task/orders.py in load_customer"


def test_it_reads_node_errors_from_the_runtime_json_and_from_a_stack():
    def node(n: int) -> str:
        record = {
            "errorType": "TypeError",
            "errorMessage": "Cannot read properties of undefined (reading 'sku')",
            "stack": [
                "TypeError: Cannot read properties of undefined (reading 'sku')",
                f"    at reserveItems (/var/task/inventory.js:{n}:11)",
                "    at async Runtime.handler (/var/task/index.js:12:5)",
            ],
        }
        return f"2026-01-05T10:00:0{n % 10}.000Z\t{INV}\tERROR\tInvoke Error \t{json.dumps(record)}"

    assert signature_of(node(88)) == signature_of(node(91))
    assert signature_of(node(88)).title == (
        "TypeError: Cannot read properties of undefined (reading 'sku') — in /var/task/inventory.js in reserveItems"
    )
    plain = "Error: upstream returned 503\n    at fetchStock (/var/task/lib/http.js:22:11)"
    assert signature_of(plain).title == "Error: upstream returned <n> — in /var/task/lib/http.js in fetchStock"


def test_it_reads_lambda_timeouts_and_lines_with_only_a_message():
    a = signature_of(f"2026-01-05T10:00:03.000Z {INV} Task timed out after 3.00 seconds")
    b = signature_of(f"2026-01-06T11:00:03.000Z {INV} Task timed out after 6.00 seconds")
    assert a == b and a.title == "Task timed out after <n> seconds"
    assert signatures.is_failure_line(f"2026-01-05T10:00:03.000Z {INV} Task timed out after 3.00 seconds")
    only_message = json.dumps({"level": "ERROR", "message": "payment 81 declined"})
    assert signature_of(only_message).title == "payment <n> declined"


def test_it_groups_bodies_by_shape_without_their_values():
    a = shape_signature(json.dumps({"customer": "ann", "amount": 3}))
    b = shape_signature(json.dumps({"amount": -7.5, "customer": "bob"}))
    c = shape_signature(json.dumps({"amount": "3", "customer": "ann"}))
    assert a == b and a != c
    assert a.title == "JSON object {amount: number, customer: string}"
    assert a.kind == signatures.SHAPE
    assert shape_signature("[1, 2]").title == "JSON array"
    assert shape_signature("customer=ann").title == "not JSON"
    assert shape_signature("customer=bob") == shape_signature("ok")


def test_it_gives_signatures_stable_digests_apart_from_shapes():
    sig = signature_of(json_line("KeyError: 'customer_id'"))
    assert sig.digest == signature_of(json_line("KeyError: 'customer_id'", "other-id")).digest
    assert len(sig.digest) == 64
    # A failure titled like a shape is still not that shape.
    assert signature_of("not JSON").digest != shape_signature("x").digest
