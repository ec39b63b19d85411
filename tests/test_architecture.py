"""The house plan, checked on the source: layers import downward only, no import cycles, no
function-local imports except where Django requires one, no product module far over 500 lines.

Read from the code's syntax trees, so it needs no database and fails the build the moment an
upward import or a cycle appears.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = ("pipelines", "opsboard", "opsboard_demo")

#: Each unit's layer, lowest first. A unit may import units of a lower layer only; within a unit
#: anything goes that makes no cycle. Units not listed take their package's entry.
LAYERS = {
    "pipelines.outbound": -1,  # the outbound address policy, below the AWS clients and the channels
    "pipelines.clock": 0,
    "pipelines.formatting": 0,
    "pipelines.jobs": 0,
    "pipelines.aws": 0,
    "pipelines.models": 1,
    "pipelines.slo": 1.5,  # SLOs from the history tables; the rule table's burn-rate rules use them
    "pipelines.spend": 1.5,  # what pipelines cost, from the history; the registry's insights read it
    "pipelines.registry.tags": 1.6,  # the one tag parser and selector: alerting routes notifications with it
    "pipelines.access": 1.7,  # who may do what on which pipeline: every page, the API and the admin ask it
    "pipelines.sso": 1.8,  # single sign-on: users, teams and role from the identity provider's claims
    "pipelines.registry": 2,
    "pipelines.alerting": 2,
    "pipelines.collection": 3,  # runs the rule table after each sync
    "pipelines.trace.logs": 2.5,  # pure reading of Lambda/API log lines: the DLQ triage and the trace use it
    "pipelines.dlq": 3,  # checks a destination's URL with the registry's parser
    "pipelines.trace": 4,  # peeks DLQs
    "pipelines.ui": 5,
    "pipelines.api": 5.5,  # the REST API: the UI's service functions and queries, for scripts
    "pipelines.admin": 6,
    "pipelines.tasks": 7,
    "pipelines.management": 7,
    "pipelines": 7,
    "pipelines.apps": 8,  # registers the tasks when Django is ready
    "opsboard": 9,
    "opsboard_demo": 10,
}
#: Function-local imports Django requires: an app's tasks are registered once the app registry is ready.
LOCAL_IMPORTS_ALLOWED = {("pipelines/apps.py", "ready")}
MAX_LINES = 520  # "about 500"


def source_files() -> list[Path]:
    files = []
    for top in TOP_PACKAGES:
        files += [p for p in (ROOT / top).rglob("*.py") if "migrations" not in p.parts]
    return sorted(files)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def known_modules() -> frozenset[str]:
    return frozenset(module_name(p) for p in source_files())


def resolve(name: str) -> str | None:
    """The project module an import names (the longest known prefix), or None for a third party."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known_modules():
            return candidate
        parts.pop()
    return None


def imports_of(path: Path) -> list[tuple[str, int, str | None]]:
    """(imported project module, line, enclosing function or None) for every import in the file."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                targets = [f"{child.module}.{a.name}" for a in child.names]
            else:
                visit(child, inner)
                continue
            for target in targets:
                out.append((target, child.lineno, func))

    visit(tree, None)
    return out


def unit_of(module: str) -> str:
    parts = module.split(".")
    while parts:
        if ".".join(parts) in LAYERS:
            return ".".join(parts)
        parts.pop()
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in source_files():
        here = module_name(path)
        edges.setdefault(here, set())
        for target, _, _ in imports_of(path):
            there = resolve(target)
            if there is not None and there != here:
                edges[here].add(there)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def test_it_has_no_import_cycles():
    assert cycles(graph()) == []


def test_it_finds_a_cycle_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_downward_only():
    upward = []
    for path in source_files():
        here = module_name(path)
        for target, line, _ in imports_of(path):
            there = resolve(target)
            if there is None or unit_of(there) == unit_of(here):
                continue
            if LAYERS[unit_of(there)] >= LAYERS[unit_of(here)]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {there}")
    assert upward == []


def test_nothing_imports_inside_a_function_unless_django_requires_it():
    local = [
        f"{path.relative_to(ROOT)}:{line} ({func}) imports {target}"
        for path in source_files()
        for target, line, func in imports_of(path)
        if func is not None and (str(path.relative_to(ROOT)), func) not in LOCAL_IMPORTS_ALLOWED
    ]
    assert local == []


def test_no_module_is_far_over_500_lines():
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in source_files()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert long == []


def test_the_product_never_imports_the_demo():
    demo = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in source_files()
        if not module_name(path).startswith("opsboard_demo")
        for target, line, _ in imports_of(path)
        if target.startswith("opsboard_demo")
    ]
    assert demo == []
