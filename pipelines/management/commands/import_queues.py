"""manage.py import_queues: register every queue of an account that has a dead-letter queue."""

from django.core.management.base import BaseCommand, CommandError

from pipelines.models import AuditThrough, AwsAccount
from pipelines.registry.discovery import DiscoveryError, import_queues


class Command(BaseCommand):
    help = "List an account's SQS queues and register those with a dead-letter queue as pipelines."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, metavar="NAME", help="The AWS account (as named in opsboard).")
        parser.add_argument("--prefix", default="", help="Only queues whose name starts with this.")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be registered.")

    def handle(self, *args, account, prefix, dry_run, **opts):
        acct = AwsAccount.objects.filter(name=account).first()
        if acct is None:
            raise CommandError(f"No AWS account named {account!r}; add it in the admin first.")
        try:
            result = import_queues(acct, prefix, dry_run, through=AuditThrough.SYSTEM)
        except DiscoveryError as exc:
            raise CommandError(str(exc)) from None
        verb = "Would register" if dry_run else "Registered"
        self.stdout.write(f"{verb} {len(result.created)} pipeline(s): {', '.join(result.created) or 'none'}")
        for w in result.warnings:
            self.stdout.write(f"  warning: {w}")
        for url, why in result.skipped:
            self.stdout.write(f"  skipped {url}: {why}")
