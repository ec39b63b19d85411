"""The demo's traffic scenarios: each pipeline's daily curve, bursts, failures and consumer limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Scenario:
    """How one simulated pipeline behaves."""

    name: str
    rate: float  # requests per second at the daily mean
    concurrency: int = 5  # consumer MaximumConcurrency
    batch_size: int = 10
    ms_per_message: float = 40.0  # consumer work per message
    failure_rate: float = 0.003  # transient failures (succeed on retry)
    poison_rate: float = 0.0  # messages that always fail
    # How poison messages fail, one chosen per message (simulator.POISON_FAILURES names them).
    poison_kinds: tuple[str, ...] = ("invalid_payload",)
    api_5xx_rate: float = 0.002
    api_4xx_rate: float = 0.01
    latency_ms: float = 45.0  # API latency
    daily_swing: float = 0.45  # the daily curve: rate × (1 ± this)
    burst_every_min: int = 0  # a burst every N minutes (0: none)
    burst_minutes: int = 0
    burst_factor: float = 1.0
    slow_every_min: int = 0  # API latency jumps every N minutes
    slow_minutes: int = 0
    slow_factor: float = 1.0
    retry_delay: int = 15  # seconds before a failed message is visible again (visibility timeout)
    # Queue configuration the scenario is provisioned with.
    max_receive_count: int = 5
    retention_period: int = 345600
    backlog_threshold: int = 1000
    oldest_age_sla: int = 300
    fifo: bool = False

    def rate_at(self, t: datetime) -> float:
        """Requests per second at time t: a daily curve (quiet at night) times bursts."""
        hour = t.hour + t.minute / 60
        daily = 1 + self.daily_swing * math.sin(2 * math.pi * (hour - 9) / 24)
        minute = int(t.timestamp() // 60)
        burst = self.burst_factor if self.burst_every_min and minute % self.burst_every_min < self.burst_minutes else 1
        return self.rate * daily * burst

    def latency_at(self, t: datetime) -> float:
        minute = int(t.timestamp() // 60)
        slow = self.slow_factor if self.slow_every_min and minute % self.slow_every_min < self.slow_minutes else 1
        return self.latency_ms * slow

    @property
    def capacity(self) -> float:
        """Messages per second the consumer can process at full concurrency."""
        return self.concurrency * 1000 / self.ms_per_message


SCENARIOS: dict[str, Scenario] = {
    "steady": Scenario("steady", rate=2.0),
    "spike": Scenario(
        "spike",
        rate=0.6,
        concurrency=1,
        batch_size=10,
        ms_per_message=400,
        burst_every_min=30,
        burst_minutes=4,
        burst_factor=8,
        backlog_threshold=300,
    ),
    "poison": Scenario(
        "poison",
        rate=1.5,
        poison_rate=0.025,
        max_receive_count=3,
        retry_delay=10,
        poison_kinds=("missing_customer", "negative_amount", "inventory_timeout", "invalid_payload"),
    ),
    # Capped below its arrival rate at every hour of the day: the oldest message ages steadily.
    "throttle": Scenario(
        "throttle",
        rate=0.24,
        concurrency=1,
        batch_size=1,
        ms_per_message=5000,
        retention_period=3 * 3600,
        oldest_age_sla=120,
        daily_swing=0.1,
    ),
    "latency": Scenario("latency", rate=2.0, slow_every_min=30, slow_minutes=10, slow_factor=18),
}


DEMO_MIX = [
    ("orders", "steady"),
    ("checkout-events", "spike"),
    ("invoices", "poison"),
    ("image-resize", "throttle"),
    ("notifications", "latency"),
    ("payments", "steady-fifo"),
]


#: The team each demo pipeline belongs to, given to its queue as AWS tags (`team`, `service`).
DEMO_TEAMS = {
    "orders": "commerce",
    "checkout-events": "commerce",
    "invoices": "billing",
    "payments": "billing",
    "image-resize": "media",
    "notifications": "platform",
}


def demo_tags(name: str) -> dict[str, str]:
    """The AWS tags a demo pipeline's queue is created with (none for a name outside the demo mix)."""
    return {"team": DEMO_TEAMS[name], "service": name} if name in DEMO_TEAMS else {}


def scenario_named(name: str) -> Scenario:
    if name.endswith("-fifo"):
        base = SCENARIOS[name.removesuffix("-fifo")]
        return Scenario(**{**base.__dict__, "name": name, "fifo": True})
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)} (or NAME-fifo)")
    return SCENARIOS[name]
