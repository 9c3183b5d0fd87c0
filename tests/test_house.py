"""The house (STYLE.md): imports run one way, with no circle, not even through an import inside a
function; the request's commit is the edge's alone; no module outgrows ~400 lines.

These read the code with ``ast``, as a reviewer would: a change that adds a circle, a commit in a
handler or a 700-line module fails here, naming the files.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("portal_app", "staff_api")
MAX_LINES = 420  # STYLE.md: "no module over ~400 lines"


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours this one imports, at module level or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else base)
    return {t for t in targets if t in modules and t != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_house_has_no_import_cycle_even_through_imports_inside_functions():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    # the check itself can fail: two modules that import each other, one from inside a function
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(graph) == [["a", "b"]]
    modules = {"portal_app.x": Path("x.py"), "portal_app.y": Path("y.py")}
    source = "def f():\n    from portal_app import y\n"
    probe = tmp_path / "x.py"
    probe.write_text(source)
    assert _imports("portal_app.x", probe, modules) == {"portal_app.y"}


def test_nothing_in_portal_app_imports_staff_api_except_the_factory():
    graph = _graph()
    offenders = sorted(
        name
        for name, targets in graph.items()
        if name.startswith("portal_app.") and any(t.startswith("staff_api") for t in targets)
    )
    assert offenders == []


def test_handlers_never_commit_the_request_commits_once_at_its_edge():
    """STYLE habit 2: services flush; a portal view or an API handler never commits (the request
    does, in portal_app.transaction, or rolls back); services never commit either."""
    commit = re.compile(r"\bcommit\(\)")
    offenders = []
    for folder in ("portal_app/portal", "portal_app/services", "staff_api"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if commit.search(line.split("#", 1)[0]):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []


def test_no_module_outgrows_about_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
