"""Discovery reads what prices the consumer's duration: its memory size and architecture."""

import pytest

from pipelines.registry.discovery import discover


@pytest.mark.django_db
def test_it_discovers_the_consumers_memory_and_architecture(register, build, account):
    p = register("orders")
    assert (p.function_memory_mb, p.function_architecture) == (128, "x86_64")  # Lambda's defaults
    bare = build("bare", consumer=False)
    found = discover(account.target(), bare.queue_url).fields
    assert (found["function_memory_mb"], found["function_architecture"]) == (None, "")
