from tests.audit.support import root, superuser  # noqa: F401
