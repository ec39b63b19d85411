"""manage.py sync_metrics: one collection cycle now, or a backfill of history from CloudWatch."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils.dateparse import parse_date, parse_datetime

from pipelines import clock
from pipelines.collection import backfill, cycles, retention, store
from pipelines.models import AwsAccount, Pipeline

RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
CLOUDWATCH_KEEPS = timedelta(days=455)


def parse_when(value: str, at: datetime) -> datetime:
    """ISO date or datetime (UTC unless it says otherwise), or an age such as 90m, 12h, 7d, 2w."""
    value = value.strip()
    m = RELATIVE.match(value)
    if m:
        return at - timedelta(**{UNITS[m.group(2)]: int(m.group(1))})
    try:
        dt = parse_datetime(value)
        if dt is None:
            d = parse_date(value)
            dt = datetime(d.year, d.month, d.day) if d else None
    except ValueError:
        dt = None
    if dt is None:
        raise CommandError(
            f"{value!r} is not a time: use an ISO date/datetime (2026-11-01, 2026-11-01T12:00) "
            "or an age such as 90m, 12h, 7d."
        )
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Sync queue counts and CloudWatch metrics now for all pipelines, or some; "
        "with --backfill, load history from CloudWatch."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--pipeline", action="append", default=[], metavar="NAME", help="Only this pipeline (repeatable)."
        )
        parser.add_argument(
            "--account",
            action="append",
            default=[],
            metavar="NAME",
            help="Only the pipelines of this AWS account (repeatable).",
        )
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--fast-only", action="store_true", help="Only queue counts (GetQueueAttributes).")
        which.add_argument("--metrics-only", action="store_true", help="Only CloudWatch metrics (GetMetricData).")
        parser.add_argument("--backfill", action="store_true", help="Load history from CloudWatch instead.")
        parser.add_argument("--since", help="Backfill start: ISO date/datetime or an age (7d). Default 24h.")
        parser.add_argument("--until", help="Backfill end: ISO date/datetime or an age. Default now.")
        parser.add_argument(
            "--window-minutes",
            type=int,
            default=0,
            metavar="N",
            help="Backfill: cap each CloudWatch call at N minutes of data (eases a slow "
            "endpoint; costs more metrics requested). Default: as large as allowed.",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON report instead of a summary.")

    def handle(self, *args, **opts):
        pipelines = self._select(opts["pipeline"], opts["account"])
        if not pipelines:
            raise CommandError("No enabled pipeline to sync: register one in the admin or with import_queues.")
        at = clock.now()
        if opts["backfill"]:
            reports = self._backfill(pipelines, opts, at)
        else:
            if opts["since"] or opts["until"]:
                raise CommandError("--since and --until only go with --backfill.")
            try:
                reports = cycles.sync_pipelines(
                    pipelines, fast=not opts["metrics_only"], metrics=not opts["fast_only"], at=at
                )
            except DatabaseError as exc:
                raise CommandError(
                    f"The database failed during the cycle ({type(exc).__name__}: {str(exc).strip()[:200]}); "
                    "what was read is not stored. Run the command again once the database answers."
                ) from None
        failed = {name: why for r in reports for name, why in r.errors.items()}
        if opts["json"]:
            self.stdout.write(
                json.dumps({"ok": not failed, "cycles": [r.as_dict() for r in reports], "failed": failed}, indent=2)
            )
        else:
            for r in reports:
                calls = ", ".join(f"{k} ×{v}" for k, v in sorted(r.calls.items())) or "no calls"
                extra = f", {r.metrics_requested} metrics requested" if r.metrics_requested else ""
                self.stdout.write(
                    f"{r.kind:<8} {r.account}: {r.pipelines} pipeline(s), {r.samples_written} row(s) "
                    f"written, {calls}{extra}, {r.seconds:.2f}s"
                    + (f" (skipped: {r.skipped})" if r.skipped else "")
                    + self._alerts(r.alerts)
                )
        if failed:
            lines = "\n".join(f"  {name}: {why}" for name, why in sorted(failed.items()))
            raise CommandError(f"{len(failed)} pipeline(s) failed:\n{lines}", returncode=1)

    @staticmethod
    def _alerts(done: dict) -> str:
        """ "; incidents: 2 opened, 1 resolved", or nothing when no incident moved."""
        moved = [f"{done[k]} {k}" for k in ("opened", "escalated", "reminded", "resolved") if done.get(k)]
        problems = [f"{len(done['errors'])} rule error(s)"] if done.get("errors") else []
        return f"; incidents: {', '.join(moved + problems)}" if moved or problems else ""

    def _select(self, names: list[str], accounts: list[str]) -> list[Pipeline]:
        qs = Pipeline.objects.select_related("account").order_by("pk")
        if names:
            found = set(qs.filter(name__in=names).values_list("name", flat=True))
            missing = [n for n in names if n not in found]
            if missing:
                raise CommandError(f"No pipeline named {', '.join(map(repr, missing))}.")
            qs = qs.filter(name__in=names)
        else:
            qs = qs.filter(enabled=True)
        if accounts:
            found = set(AwsAccount.objects.filter(name__in=accounts).values_list("name", flat=True))
            missing = [a for a in accounts if a not in found]
            if missing:
                raise CommandError(f"No AWS account named {', '.join(map(repr, missing))}.")
            qs = qs.filter(account__name__in=accounts)
        return list(qs)

    def _backfill(self, pipelines, opts, at):
        since = parse_when(opts["since"], at) if opts["since"] else at - timedelta(hours=24)
        until = parse_when(opts["until"], at) if opts["until"] else at
        until = min(until, at)
        if since >= until:
            raise CommandError("--since must be earlier than --until (and than now).")
        if at - since > CLOUDWATCH_KEEPS:
            raise CommandError("CloudWatch keeps metrics for 455 days: choose a --since within that.")
        by_account: dict[int, list[Pipeline]] = {}
        for p in pipelines:
            by_account.setdefault(p.account_id, []).append(p)
        reports = []
        for pipes in by_account.values():
            progress = self._progress(pipes[0].account.name) if sys.stderr.isatty() and not opts["json"] else None
            window = timedelta(minutes=opts["window_minutes"]) if opts["window_minutes"] > 0 else None
            reports.append(
                backfill.backfill(pipes[0].account, pipes, since, until, at=at, progress=progress, max_window=window)
            )
            if progress:
                sys.stderr.write("\n")
        retention.rollup_range(since, min(until, store.floor_hour(at)))
        return reports

    @staticmethod
    def _progress(label: str):
        def show(done: int, total: int) -> None:
            width = 30
            filled = int(width * done / max(total, 1))
            sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            sys.stderr.flush()

        return show
