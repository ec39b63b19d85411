"""The past hours of a fresh demo: a fluid model of each scenario, published as the per-minute
metrics AWS would have, and the queues left as that history ends."""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from opsboard_demo.emulator import SENT_AT
from opsboard_demo.state import MAX_SEED, Minute, SimPipeline


class History:
    """History for the Simulator (a mixin: it uses the simulator's pipelines, clients and publish)."""

    def history(self, hours: float, end: datetime | None = None) -> int:
        """Publish `hours` of per-minute metrics from a fluid model of each scenario; returns minutes.

        The model follows the same rates, capacity, failures and poison messages as live traffic,
        so the charts of a fresh demo continue smoothly into what the simulator then does.
        """
        end = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
        start = end - timedelta(minutes=int(hours * 60))
        buffer: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for sim in self.pipelines:
            sc = sim.scenario
            backlog = 0.0
            dlq = 0.0
            dlq_oldest = 0.0
            t = start
            while t < end:
                arrivals = sc.rate_at(t) * 60
                accepted = arrivals * (1 - sc.api_5xx_rate - sc.api_4xx_rate)
                capacity = sc.capacity * 60
                work = backlog + accepted
                processed = min(work, capacity)
                poison = processed * sc.poison_rate
                dead = poison / sc.max_receive_count  # each poison message takes max_receive_count receives
                backlog = max(0.0, work - processed + poison - dead)
                dlq += dead
                # The oldest message waits about as long as it takes to work through what is ahead.
                oldest = min(sc.retention_period, backlog / sc.capacity)
                dlq_oldest = dlq_oldest + 60 if dlq >= 1 else 0.0
                invocations = processed / sc.batch_size
                m = Minute(
                    sent=int(accepted),
                    received=int(processed),
                    deleted=int(processed - poison),
                    empty_receives=0 if backlog else int(sc.concurrency * 3),
                    invocations=max(0, int(invocations)),
                    # Each failing message fails the invocation that carried it.
                    errors=int(min(invocations, round(poison) + int(processed * sc.failure_rate))),
                    throttles=int((backlog > capacity) * sc.concurrency * 2),
                    durations=[sc.ms_per_message * sc.batch_size] * max(1, int(invocations)),
                    concurrency=min(sc.concurrency, max(1, math.ceil(processed / max(capacity, 1) * sc.concurrency))),
                    api_count=int(arrivals),
                    api_4xx=int(arrivals * sc.api_4xx_rate),
                    api_5xx=int(arrivals * sc.api_5xx_rate),
                    latencies=[sc.latency_at(t)] * 3,
                )
                counts = {
                    "queue": {
                        "visible": int(backlog),
                        "in_flight": int(min(backlog, sc.concurrency * sc.batch_size)),
                        "delayed": 0,
                    },
                    "dlq": {"visible": int(dlq), "in_flight": 0, "delayed": 0},
                }
                self.publish(sim, t, m, counts, oldest, dlq_oldest, buffer)
                if sum(len(v) for v in buffer.values()) >= 3000:
                    self.flush(buffer)
                t += timedelta(minutes=1)
            self._seed(sim, int(backlog), int(dlq), oldest, dlq_oldest, end)
        self.flush(buffer)
        return int(hours * 60)

    def _seed(self, sim: SimPipeline, backlog: int, dlq: int, oldest: float, dlq_oldest: float, end: datetime) -> None:
        """Leave the queues as the history ended, so live traffic picks up where the charts stop.

        Message ages are spread evenly between the modelled oldest message and now: the simulator
        tracks them, and each message carries its send time for the demo's emulator (SENT_AT).
        """
        for url, count, age, ledger, poison in (
            (sim.res.queue_url, min(backlog, MAX_SEED), oldest, sim.outstanding, False),
            (sim.res.dlq_url, min(dlq, MAX_SEED), dlq_oldest, sim.dead, True),
        ):
            if not url or count <= 0:
                continue
            for i in range(0, count, 10):
                entries = []
                for j in range(min(10, count - i)):
                    rid = str(uuid.uuid4())
                    sent_at = end.timestamp() - age * (1 - (i + j) / count)
                    entry = {
                        "Id": str(j),
                        "MessageBody": json.dumps({"requestId": rid, "poison": poison}),
                        "MessageAttributes": {
                            "requestId": {"DataType": "String", "StringValue": rid},
                            SENT_AT: {"DataType": "Number", "StringValue": str(int(sent_at * 1000))},
                        },
                    }
                    if sim.scenario.fifo:
                        entry.update(MessageGroupId=f"customer-{j}", MessageDeduplicationId=rid)
                    entries.append(entry)
                resp = self._sqs.send_message_batch(QueueUrl=url, Entries=entries)
                for k, ok in enumerate(resp.get("Successful", [])):
                    ledger[ok["MessageId"]] = end.timestamp() - age * (1 - (i + k) / count)
