"""Background work by name: domain code hands a job to a worker without importing the task layer.

`pipelines.tasks` (the top layer) defines the Celery tasks; the packages below it ask for one by
name, so dependencies keep running one way. With CELERY_TASK_ALWAYS_EAGER the job runs in-process,
as any `delay()` does. The app registers the tasks when Django starts (`PipelinesConfig.ready`).
"""

from __future__ import annotations

from celery import current_app

RUN_REDRIVE = "pipelines.tasks.run_redrive"
DELIVER_NOTIFICATION = "pipelines.tasks.deliver_notification"
RUN_TRIAGE_SCAN = "pipelines.tasks.run_triage_scan"


def submit(name: str, *args) -> None:
    """Queue the named task with these arguments (raises what the broker raises when it is down)."""
    current_app.tasks[name].delay(*args)
