from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pipelines"
    verbose_name = "Pipelines"

    def ready(self) -> None:
        # Django's place for start-up registration: the Celery tasks, which `jobs.submit` finds by name.
        from pipelines import tasks  # noqa: F401
