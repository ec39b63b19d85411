"""Admin views for dead-letter queues: browse, redrive, progress."""


def admin_urls(model_admin):
    """URL patterns mounted under the pipeline admin (admin/pipelines/pipeline/...)."""
    return []
