"""manage.py demo: an emulated AWS, simulated pipelines, a worker with beat, and the web app.

Starts moto on 127.0.0.1 (unless AWS_ENDPOINT_URL names an endpoint), provisions a mix of
real-shaped pipelines there, registers them through the same discovery an operator uses, loads a
few hours of simulated history, then runs the simulator, a Celery worker with beat and the web
server together until Ctrl-C. A local webhook receiver is the demo's notification channel: each
alert it receives is printed here and appended to var/demo-webhooks.jsonl.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from opsboard_demo.emulator import MotoServer, free_port, wait_for_http
from opsboard_demo.receiver import Received, WebhookReceiver
from opsboard_demo.registration import register
from opsboard_demo.scenarios import DEMO_MIX, demo_tags, scenario_named
from opsboard_demo.simulator import Simulator
from pipelines import aws, clock
from pipelines.collection import backfill, cycles, retention, store
from pipelines.models import AwsAccount, ChannelKind, NotificationChannel, Severity
from pipelines.registry.discovery import DiscoveryError

REGION = "us-east-1"
#: How often the demo checks that its emulator, worker and web server are still running.
WATCH_SECONDS = 3
#: The emulator and the webhook receiver listen here, which the outbound address policy refuses by default.
LOOPBACK = ("127.0.0.0/8", "::1/128")


class Command(BaseCommand):
    help = "Run opsboard against an emulated AWS with simulated pipelines (what `make demo` runs)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--history-hours", type=float, default=4.0, help="Hours of simulated history to load first (0: none)."
        )
        parser.add_argument(
            "--scenario",
            action="append",
            default=[],
            metavar="NAME[=SCENARIO]",
            help="A pipeline to simulate, e.g. orders=steady (repeatable). Default: a mix of "
            "steady, spike, poison, throttle, latency and a FIFO queue.",
        )
        parser.add_argument("--tick", type=float, default=2.0, help="Seconds between simulator steps.")
        parser.add_argument("--duration", type=float, default=None, help="Stop after this many seconds.")
        parser.add_argument("--no-web", action="store_true", help="Do not start the web server.")
        parser.add_argument("--no-worker", action="store_true", help="Do not start the Celery worker and beat.")

    def handle(self, *args, **opts):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.died = ""
        self.moto: MotoServer | None = None
        self.receiver: WebhookReceiver | None = None
        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        try:
            self._allow_loopback()
            endpoint = self._endpoint()
            account = self._account(endpoint)
            self._clear_broker()
            self._start_receiver()
            sim = Simulator(account.target())
            self._provision(sim, account, self._mix(opts["scenario"]))
            if opts["history_hours"] > 0:
                self._history(sim, account, opts["history_hours"])
            cycles.sync_pipelines(list(account.pipelines.select_related("account")))
            user, password = self._login()
            if not opts["no_worker"]:
                self._start_worker()
            url = f"http://{opts['host']}:{opts['port']}/admin/"
            if not opts["no_web"]:
                self._start_web(opts["host"], opts["port"])
                wait_for_http(f"http://{opts['host']}:{opts['port']}/admin/login/", timeout=60)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nopsboard is running: {url}\n  login: {user} / {password}\n"
                    f"  emulated AWS: {endpoint}\n  Ctrl-C stops everything.\n"
                )
            )
            threading.Thread(target=self._watch, args=(stop,), name="demo-watch", daemon=True).start()
            try:
                sim.run(tick=opts["tick"], stop=stop, duration=opts["duration"])
            except KeyboardInterrupt:
                pass
        finally:
            stop.set()
            self._stop_all()
        if self.died:
            raise CommandError(self.died)
        self.stdout.write("demo stopped")

    # --- pieces -----------------------------------------------------------------------------

    def _allow_loopback(self) -> None:
        """Let this process, and the web server, worker and beat it starts (they inherit the environment),
        reach the emulator and the receiver on loopback, on top of what OUTBOUND_ALLOWED_NETWORKS allows."""
        allowed = tuple(dict.fromkeys([*settings.OUTBOUND_ALLOWED_NETWORKS, *LOOPBACK]))
        settings.OUTBOUND_ALLOWED_NETWORKS = allowed
        os.environ["OUTBOUND_ALLOWED_NETWORKS"] = ",".join(allowed)

    def _endpoint(self) -> str:
        configured = os.environ.get("AWS_ENDPOINT_URL", "")
        # Dummy credentials for the emulator unless the environment has some.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
        if configured:
            self.stdout.write(f"Using the AWS endpoint in AWS_ENDPOINT_URL: {configured}")
            return configured
        log = Path(settings.VAR_DIR) / "moto.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.moto = MotoServer(port=free_port(), log_path=str(log), backdating=True).start()
        os.environ["AWS_ENDPOINT_URL"] = self.moto.url
        self.stdout.write(f"Started an emulated AWS (moto) at {self.moto.url}")
        return self.moto.url

    def _account(self, endpoint: str) -> AwsAccount:
        account, _ = AwsAccount.objects.update_or_create(
            name="demo", defaults={"region": REGION, "endpoint_url": endpoint, "unsupported_statistics": []}
        )
        # A new emulator holds none of the old queues: start the demo's pipelines afresh.
        account.pipelines.all().delete()
        aws.reset_clients()
        return account

    def _start_receiver(self) -> None:
        """A webhook receiver on 127.0.0.1, registered as the demo's notification channel."""
        log = Path(settings.VAR_DIR) / "demo-webhooks.jsonl"
        log.unlink(missing_ok=True)
        self.receiver = WebhookReceiver(port=free_port(), log_path=log, on_receive=self._print_webhook).start()
        NotificationChannel.objects.update_or_create(
            name="Demo webhook receiver",
            defaults={
                "kind": ChannelKind.WEBHOOK,
                "target": self.receiver.url,
                "enabled": True,
                "min_severity": Severity.WARNING,
                "send_resolved": True,
            },
        )
        self.stdout.write(f"Alerts go to a webhook receiver at {self.receiver.url} (logged to {log})")

    def _print_webhook(self, item: Received) -> None:
        body = item.body if isinstance(item.body, dict) else {}
        text = body.get("text") or str(item.body)[:200]
        self.stdout.write(f"{time.strftime('%H:%M:%S', time.localtime(item.at))} webhook: {text}")

    def _mix(self, wanted: list[str]) -> list[tuple[str, str]]:
        if not wanted:
            return DEMO_MIX
        mix = []
        for item in wanted:
            name, _, scenario = item.partition("=")
            mix.append((name, scenario or name))
        for _, scenario in mix:
            try:
                scenario_named(scenario)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        return mix

    def _provision(self, sim: Simulator, account: AwsAccount, mix) -> None:
        for name, scenario_name in mix:
            scenario = scenario_named(scenario_name)
            made = sim.add(name, scenario, tags=demo_tags(name)).res
            try:
                register(account, name, scenario, made)
            except DiscoveryError as exc:
                raise CommandError(f"Could not register {name}: {exc}") from None
            self.stdout.write(f"  {name:<16} {scenario.name:<12} {made.queue_url}")

    def _history(self, sim: Simulator, account: AwsAccount, hours: float) -> None:
        started = time.monotonic()
        sim.history(hours)
        pipes = list(account.pipelines.all())
        at = clock.now()
        # The emulator's GetMetricData slows with the square of a call's window: many short calls.
        report = backfill.backfill(
            account, pipes, at - timedelta(hours=hours), at, at=at, max_window=timedelta(minutes=20)
        )
        retention.rollup_range(at - timedelta(hours=hours), store.floor_hour(at))
        self.stdout.write(
            f"Loaded {hours:g} h of simulated history: {report.samples_written} rows "
            f"({report.api_calls} CloudWatch calls, {time.monotonic() - started:.1f}s)"
        )

    def _login(self) -> tuple[str, str]:
        User = get_user_model()
        password = secrets.token_urlsafe(9)
        user, _ = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return "admin", password

    def _spawn(self, name: str, args: list[str]) -> None:
        # Livelier than the cost-aware production default: the simulator publishes every minute.
        env = {"METRICS_INTERVAL_SECONDS": "120", **os.environ, "DEBUG": os.environ.get("DEBUG", "true")}
        self.children.append((name, subprocess.Popen(args, env=env, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL)))

    def _watch(self, stop: threading.Event) -> None:
        """Stop the demo, saying which part died, when the emulator, the worker or the web server
        exits: a demo whose charts silently freeze would mislead."""
        while not stop.wait(WATCH_SECONDS):
            parts = [*self.children]
            if self.moto and self.moto.process:
                parts.append(("emulated AWS (moto)", self.moto.process))
            for name, process in parts:
                code = process.poll()
                if code is not None:
                    self.died = f"The {name} stopped (exit code {code}), so the demo stopped too; its log is above."
                    if name.startswith("emulated"):
                        self.died = self.died.replace("its log is above", f"its log is {self.moto.log_path}")
                    stop.set()
                    return

    @staticmethod
    def _clear_broker() -> None:
        """The embedded broker: tasks queued by an earlier run are for resources long gone. (Run
        before the first sync, whose notifications are queued for the worker.)"""
        folder = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("data_folder_in")
        if folder:
            for leftover in Path(folder).glob("*.msg"):
                leftover.unlink(missing_ok=True)

    def _start_worker(self) -> None:
        schedule = Path(settings.VAR_DIR) / "celerybeat-schedule"
        self._spawn(
            "Celery worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "opsboard",
                "worker",
                "-B",
                "--loglevel",
                "WARNING",
                "--concurrency",
                "2",
                "--schedule",
                str(schedule),
            ],
        )

    def _start_web(self, host: str, port: int) -> None:
        self._spawn("web server", [sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload"])

    def _stop_all(self) -> None:
        for _, child in self.children:
            if child.poll() is None:
                child.terminate()
        for _, child in self.children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if self.receiver:
            self.receiver.stop()
        if self.moto:
            self.moto.stop()
