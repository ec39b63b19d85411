"""Alert lead time: how long after a fault begins does a webhook arrive, and how much earlier is that
than the trouble is visible in a chart?

Run from the repository root (also `make bench-alerts`):

    .venv/bin/python bench/alert_lead_bench.py                 # 4.5 min healthy, then 12 min of faults
    .venv/bin/python bench/alert_lead_bench.py --warmup 2 --fault 8

It prints figures; it asserts nothing. It runs in real time against moto in server mode, on a
throwaway SQLite database, with the demo's poison and throttle scenarios driven by the demo's
simulator. Both pipelines start healthy (no poison messages; a consumer with twice the throttle
scenario's concurrency); at t0 the poison messages begin and the consumer's concurrency drops to
the scenario's 1. Collection runs in-process at the demo's cadence (fast cycle every 60 s, metrics
every 120 s), Celery tasks run eagerly, so each notification goes out through the real path (alert
evaluation → delivery → HTTP) to a local webhook receiver.

"Visible in a chart" is when the data a chart draws first crosses the line that chart draws for
it, as stored by a cycle (the wall time that cycle finished): the backlog against its threshold,
the oldest message's age against its SLA, and the DLQ leaving zero (its chart has no line: any
message there is the signal; it shares the backlog chart's axis, scaled to the threshold, where a
handful of messages hardly shows, so the moment it reaches 10 is printed too). The lead time is the
earliest of these moments less the first webhook's arrival.
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from datetime import UTC, datetime

import setup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--warmup", type=float, default=4.0, help="healthy minutes before the faults (default 4)")
    ap.add_argument("--fault", type=float, default=12.0, help="minutes of faults measured (default 12)")
    ap.add_argument(
        "--phase",
        type=float,
        default=30.0,
        help="seconds after a fast cycle the faults begin (default 30: half-way to the next)",
    )
    ap.add_argument("--fast-every", type=int, default=60, help="seconds between fast cycles (default 60)")
    ap.add_argument("--metrics-every", type=int, default=120, help="seconds between metrics cycles (default 120)")
    return ap.parse_args(argv)


# The options name the database Django starts on; the project's modules below need Django started.
ARGS = parse_args()
TMP = setup.temp_dir("opsboard-alert-bench-")
setup.configure_django(setup.sqlite_url(TMP), TMP, eager_tasks=True)

from opsboard_demo.emulator import MotoServer  # noqa: E402
from opsboard_demo.receiver import WebhookReceiver  # noqa: E402
from opsboard_demo.registration import register  # noqa: E402
from opsboard_demo.scenarios import scenario_named  # noqa: E402
from opsboard_demo.simulator import Simulator  # noqa: E402
from pipelines import aws  # noqa: E402
from pipelines.collection import cycles, store  # noqa: E402
from pipelines.models import ChannelKind, MetricSample, NotificationChannel, Pipeline  # noqa: E402


def fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:+.0f} s"


def run(args) -> None:
    moto = MotoServer().start()
    receiver = WebhookReceiver().start()
    try:
        account = setup.emulator_account("bench", moto.url)
        NotificationChannel.objects.create(name="receiver", kind=ChannelKind.WEBHOOK, target=receiver.url)
        sim = Simulator(account.target())
        faults = {"invoices": scenario_named("poison"), "image-resize": scenario_named("throttle")}
        healthy = {
            "invoices": dataclasses.replace(faults["invoices"], poison_rate=0.0),
            "image-resize": dataclasses.replace(
                faults["image-resize"], concurrency=2 * faults["image-resize"].concurrency
            ),
        }
        pipes = {}
        for name, scenario in healthy.items():
            made = sim.add(name, scenario).res
            pipes[name] = register(account, name, scenario, made)

        stop = threading.Event()
        traffic = threading.Thread(target=sim.run, kwargs={"tick": 2.0, "stop": stop}, daemon=True)
        traffic.start()
        started = time.time()
        # Faults do not wait for a cycle: by default they begin half-way between two fast cycles.
        t0 = started + args.warmup * 60 + args.phase
        end = t0 + args.fault * 60
        next_fast, next_metrics = started, started + args.metrics_every
        faulted = False
        first_seen: dict[tuple[str, str], float] = {}
        calls = 0
        print(
            f"healthy for {args.warmup:g} min, then faults for {args.fault:g} min "
            f"(fast cycle every {args.fast_every} s, metrics every {args.metrics_every} s)",
            flush=True,
        )
        while time.time() < end:
            now_t = time.time()
            if not faulted and now_t >= t0:
                for s in sim.pipelines:
                    s.scenario = faults[s.name]
                faulted = True
                print(f"t0: faults begin ({time.strftime('%H:%M:%S')})", flush=True)
            ran = False
            if now_t >= next_fast:
                calls += cycles.run_fast_cycle(account, list(Pipeline.objects.filter(account=account))).api_calls
                next_fast += args.fast_every
                ran = True
            if now_t >= next_metrics:
                calls += cycles.run_metrics_cycle(account, list(Pipeline.objects.filter(account=account))).api_calls
                next_metrics += args.metrics_every
                ran = True
            if ran and faulted:
                stored = time.time()
                for name, p in pipes.items():
                    since = store.floor_minute(aws_datetime(t0))
                    rows = MetricSample.objects.filter(pipeline=p, minute__gte=since)
                    checks = {
                        "backlog ≥ threshold": rows.filter(visible__gte=p.backlog_threshold),
                        "age ≥ SLA": rows.filter(oldest_age__gte=p.oldest_age_sla),
                        "DLQ > 0": rows.filter(dlq_visible__gt=0),
                        "DLQ ≥ 10": rows.filter(dlq_visible__gte=10),
                    }
                    for what, qs in checks.items():
                        if (name, what) not in first_seen and qs.exists():
                            first_seen[(name, what)] = stored
            time.sleep(0.5)
        stop.set()
        traffic.join(timeout=10)

        print(
            f"\n{'pipeline':<14} {'first webhook (rule)':<42} {'after t0':>9}   chart line crossed (after t0)"
            f"   lead time"
        )
        for name in pipes:
            hooks = [
                r
                for r in receiver.received
                if r.at >= t0
                and (r.body or {}).get("pipeline", {}).get("name") == name
                and r.body.get("event") == "opened"
            ]
            first = hooks[0] if hooks else None
            rule = f"{first.body['incident']['rule']}: {first.body['incident']['summary']}"[:40] if first else "none"
            crossings = {what: at for (n, what), at in first_seen.items() if n == name}
            seen = min(crossings.values()) if crossings else None
            line = (
                ", ".join(f"{w} {fmt(at - t0)}" for w, at in sorted(crossings.items(), key=lambda kv: kv[1]))
                or f"none within {args.fault:g} min"
            )
            lead = (seen - first.at) if first and seen else ((end - first.at) if first else None)
            print(
                f"{name:<14} {rule:<42} {fmt(first.at - t0) if first else '—':>9}   {line}   "
                f"{fmt(lead)}{'' if seen or not first else ' (at least: nothing crossed)'}"
            )
            for h in hooks:
                print(
                    f"{'':<14}   {fmt(h.at - t0):>7}  {h.body['incident']['severity']:<8} "
                    f"{h.body['incident']['rule']}: {h.body['incident']['summary'][:90]}"
                )
        print(
            f"\nwebhooks received after t0: {sum(1 for r in receiver.received if r.at >= t0)}; "
            f"AWS calls by collection: {calls}"
        )
    finally:
        receiver.stop()
        moto.stop()
        aws.reset_clients()


def aws_datetime(epoch: float):
    return datetime.fromtimestamp(epoch, tz=UTC)


def main(args: argparse.Namespace) -> None:
    setup.migrate()
    run(args)


if __name__ == "__main__":
    main(ARGS)
