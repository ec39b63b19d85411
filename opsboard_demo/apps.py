from django.apps import AppConfig


class OpsboardDemoConfig(AppConfig):
    """The demo: an emulated AWS, a simulator that plays the pipelines' traffic, and `manage.py demo`."""

    name = "opsboard_demo"
    verbose_name = "opsboard demo"
