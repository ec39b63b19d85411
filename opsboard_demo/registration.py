"""Registering a simulated pipeline the way an operator would: discovery from its queue URL."""

from __future__ import annotations

from opsboard_demo.provision import Provisioned
from opsboard_demo.scenarios import Scenario
from pipelines.models import AwsAccount, Pipeline
from pipelines.registry.discovery import discover, store_discovery


def register(account: AwsAccount, name: str, scenario: Scenario, made: Provisioned) -> Pipeline:
    """Discover the provisioned pipeline from AWS and save it with the scenario's thresholds.
    Raises DiscoveryError with the reason when discovery fails."""
    found = discover(account.target(), made.queue_url, "rest", made.api_id, made.api_stage)
    pipeline = Pipeline(
        name=name,
        account=account,
        api_kind="rest",
        api_id=made.api_id,
        api_stage=made.api_stage,
        api_log_group=made.api_log_group,
        backlog_threshold=scenario.backlog_threshold,
        oldest_age_sla=scenario.oldest_age_sla,
    )
    store_discovery(pipeline, found)
    pipeline.save()
    return pipeline
