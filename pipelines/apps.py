from django.apps import AppConfig

from pipelines.spend import prices


class PipelinesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pipelines"
    verbose_name = "Pipelines"

    def ready(self) -> None:
        # Django's place for start-up registration: the Celery tasks, which `jobs.submit` finds by name.
        from pipelines import tasks  # noqa: F401
        from pipelines.ui import logins

        # Logins and refused logins go to the audit trail.
        logins.connect()

        # A price table that cannot be read stops start-up with its sentence, not every page that prices.
        prices.table()
