from django.contrib.admin.apps import AdminConfig


class OpsboardAdminConfig(AdminConfig):
    """The Django admin, with opsboard's site: the pipeline overview is its landing page."""

    default_site = "opsboard.admin.OpsboardAdminSite"
