"""A static-files finder for front-end files that Python packages ship (no CDN, no copies in the repo).

`vendor/plotly.min.js` is plotly.js from the plotly wheel (MIT licence).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

# static path -> (package, file inside the package)
VENDORED = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.is_file() else None


class PackageFinder(BaseFinder):
    def check(self, **kwargs):
        return [
            Error(f"{pkg} does not ship {rel}; reinstall opsboard's dependencies.", id="pipelines.E001")
            for pkg, rel in VENDORED.values()
            if _package_file(pkg, rel) is None
        ]

    def find(self, path, find_all=False, **kwargs):
        if path in VENDORED:
            found = _package_file(*VENDORED[path])
            if found:
                return [str(found)] if find_all else str(found)
        return [] if find_all else None

    def list(self, ignore_patterns):
        for static_path, (pkg, rel) in VENDORED.items():
            found = _package_file(pkg, rel)
            if found:
                storage = FileSystemStorage(location=str(found.parent))
                storage.prefix = str(Path(static_path).parent)
                yield found.name, storage
