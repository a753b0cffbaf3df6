"""The layer rules of docs/architecture.md, checked on the code's own imports.

Every ``import``/``from … import`` statement of ``activations`` and ``loran_search`` counts,
including those inside functions (a deferred import is still a dependency); only imports under
``if TYPE_CHECKING:`` are left out (they never run). Relative imports are resolved. The rules:

1. no import circle between modules, nor between rooms (a room is a top-level module of a
   package, or a sub-package as a whole);
2. nothing outside ``loran_search.cli`` imports the command layer;
3. the registry (``activations``) imports nothing of ``loran_search``;
4. every arrow points down the layer list of docs/architecture.md (or stays in its room);
5. the analysis never trains: it imports no trainer, model, task, adapter or quantization code;
6. layers below the search know no study: they import neither ``search`` nor ``analysis``.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("activations", "loran_search")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules ``module`` imports (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    found: set[str] = set()

    def add(name: str) -> None:
        # the longest known module that `name` is (or lies in)
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                full = f"{target}.{alias.name}"
                add(full if full in known else target)
    return found


def build_graph() -> dict[str, set[str]]:
    """``{module: project modules it imports}`` for every module of the two packages."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    known = set(files)
    return {m: _imports(p, m, known) for m, p in files.items()}


def room(module: str) -> str:
    """``loran_search.search.study`` → ``loran_search.search``; ``loran_search.train`` itself."""
    parts = module.split(".")
    if parts[0] == "activations" or parts[:2] == ["loran_search", "activations"]:
        return "activations"  # loran_search.activations is the registry under the tool's name
    return ".".join(parts[:2])


def _layers() -> list[list[str]]:
    """The layer list of docs/architecture.md: lines ``N. `room`, `room` …`` from the top down."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- layers -->")[1].split("<!-- /layers -->")[0]
    layers = []
    for line in block.splitlines():
        if re.match(r"^\d+\.\s", line.strip()):
            layers.append(re.findall(r"`([\w.]+)`", line))
    return layers


GRAPH = build_graph()
LAYERS = _layers()
LEVEL = {r: i for i, rooms in enumerate(LAYERS) for r in rooms}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _room_graph() -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = defaultdict(set)
    for m, deps in GRAPH.items():
        rooms[room(m)].update(room(d) for d in deps if room(d) != room(m))
    return dict(rooms)


def _edges_where(pred) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps if pred(m, d))


def test_the_graph_is_read() -> None:
    """A sanity check that the reader sees imports at all (including deferred ones)."""
    assert "loran_search.cli" in GRAPH and "activations.registry" in GRAPH
    assert "loran_search.search.validate" in GRAPH["loran_search.cli.study"]  # inside a function
    assert LAYERS and all(LAYERS)


def test_no_import_circle_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_no_import_circle_between_rooms() -> None:
    assert _cycles(_room_graph()) == []


def test_nothing_below_imports_the_command_layer() -> None:
    def bad(m: str, d: str) -> bool:
        return d.startswith("loran_search.cli") and not m.startswith("loran_search.cli")

    assert _edges_where(bad) == []


def test_the_registry_knows_no_training() -> None:
    def bad(m: str, d: str) -> bool:
        return room(m) == "activations" and d.startswith("loran_search")

    assert _edges_where(bad) == []


def test_every_room_is_in_a_layer() -> None:
    assert sorted({room(m) for m in GRAPH} - set(LEVEL)) == []


def test_arrows_point_down() -> None:
    def up(m: str, d: str) -> bool:
        a, b = room(m), room(d)
        return a != b and LEVEL[b] <= LEVEL[a]

    assert _edges_where(up) == []


@pytest.mark.parametrize(
    "forbidden",
    [
        "loran_search.train",
        "loran_search.models",
        "loran_search.tasks",
        "loran_search.adapters",
        "loran_search.quant",
        "loran_search.search",
    ],
)
def test_analysis_reads_records_and_never_trains(forbidden: str) -> None:
    def bad(m: str, d: str) -> bool:
        return room(m) == "loran_search.analysis" and room(d) == forbidden

    assert _edges_where(bad) == []


def test_layers_know_no_study() -> None:
    below = {"loran_search.train", "loran_search.models", "loran_search.tasks"}
    below |= {"loran_search.adapters", "loran_search.quant", "loran_search.config"}
    study = {"loran_search.search", "loran_search.analysis"}
    assert _edges_where(lambda m, d: room(m) in below and room(d) in study) == []


def test_nothing_imports_the_shadowable_top_level_name() -> None:
    """A user's ``activations.py`` hides the top-level ``activations`` (issue 22): the tool says
    ``loran_search.activations`` and the registry imports itself relatively."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                if any(n == "activations" or n.startswith("activations.") for n in names):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_names_record_owns_are_defined_once() -> None:
    """The meanings both the search and the analysis use are defined in ``record.py`` only.

    Every module of the two packages is parsed; a module-level assignment or ``def``/``class`` of
    one of these names anywhere but ``loran_search/record.py`` fails with its file:line (an
    ``import``, a re-export, is fine; so is a local name inside a function).
    """
    owned = {
        # the form layout
        "FORM_CHOICE",
        "FORM_PREFIX",
        "FORM_FAMILY",
        "FORM_NAME_PREFIX",
        "form_param_declarations",
        "form_param_range",
        # the mechanism: the inert threshold and the one rule for the visited range of P
        "INERT_THRESHOLD",
        "UNIT_RANGE",
        "p_abs_max",
        "visited_bound",
        "visited_range",
    }
    record = ROOT / "loran_search" / "record.py"
    defined_there = set()
    for node in ast.parse(record.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            defined_there |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            defined_there.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined_there.add(node.name)
    assert sorted(owned - defined_there) == [], "record.py no longer defines these"
    second = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path == record:
                continue
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Assign):
                    names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                    names = [node.target.id] if isinstance(node.target, ast.Name) else []
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names = [node.name]
                else:
                    continue
                second += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {n} (record.py owns it: import it)"
                    for n in names
                    if n in owned
                ]
    assert second == []
