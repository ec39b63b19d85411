#!/usr/bin/env python
"""Django's command-line utility for opsboard."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management import execute_from_command_line


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsboard.settings")
    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # bad configuration: its sentence, not a traceback
        sys.exit(f"opsboard is not configured: {exc}")


if __name__ == "__main__":
    main()
