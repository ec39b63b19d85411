"""What the simulator keeps: each simulated pipeline, and what happened in its current minute."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from opsboard_demo.provision import Provisioned
from opsboard_demo.scenarios import Scenario

# Messages left in a queue to continue a history. The emulator's SQS slows with queue depth, so
# the scenarios keep backlogs in the low thousands and the seed is capped.
MAX_SEED = 800


@dataclass
class Minute:
    """What happened in one minute, for the metrics AWS would publish."""

    sent: int = 0
    received: int = 0
    deleted: int = 0
    empty_receives: int = 0
    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    durations: list[float] = field(default_factory=list)
    concurrency: int = 0
    api_count: int = 0
    api_4xx: int = 0
    api_5xx: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass
class SimPipeline:
    name: str
    scenario: Scenario
    res: Provisioned
    minute: Minute = field(default_factory=Minute)
    minute_start: datetime | None = None
    outstanding: dict[str, float] = field(default_factory=dict)  # message id -> sent epoch (main queue)
    dead: dict[str, float] = field(default_factory=dict)  # message id -> original sent epoch (DLQ)
    poisoned: dict[str, str] = field(default_factory=dict)  # message id -> how it fails (poison kind)
    carry: float = 0.0  # fractional arrivals
    credit: float = 0.0  # fractional consumer capacity
    throttled: float = 0.0  # fractional throttles

    @property
    def queue_name(self) -> str:
        return self.res.queue_arn.rsplit(":", 1)[-1]


def stats(values: list[float]) -> dict[str, float]:
    return {
        "SampleCount": float(len(values)),
        "Sum": float(sum(values)),
        "Minimum": float(min(values)),
        "Maximum": float(max(values)),
    }
