"""The layer rules and the in-package orders of docs/architecture.md, checked on the code's imports.

Every ``import``/``from … import`` statement of ``activations`` and ``loran_search`` counts,
including those inside functions (a deferred import is still a dependency). Relative imports are
resolved. The rules between rooms leave out imports under ``if TYPE_CHECKING:`` (they never
run); the rules inside an ordered package count them (a type two modules need from each other is
a circle all the same: it lives in the wrong module). The rules:

1. no import circle between modules (type-only imports included), nor between rooms (a room is
   a top-level module of a package, or a sub-package as a whole);
2. nothing outside ``loran_search.cli`` imports the command layer;
3. the registry (``activations``) imports nothing of ``loran_search``;
4. every arrow points down the layer list of docs/architecture.md (or stays in its room);
5. the analysis never trains: it imports no trainer, model, task, adapter or quantization code;
6. layers below the search know no study: they import neither ``search`` nor ``analysis``;
7. inside a package with an ``<!-- order PKG -->`` block (section "Order inside packages"), a
   module imports only modules of earlier items, and every module is listed
   (:func:`order_problems`; the blocks are read by :func:`parse_orders`).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("activations", "loran_search")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_sites(
    path: Path, module: str, known: set[str], *, type_only: bool = False
) -> list[tuple[str, int]]:
    """``(project module, line)`` of every import of ``module``, in the order written.

    Args:
        path: The module's file.
        module: Its dotted name.
        known: Every module of the project (an import names the longest one it is, or lies in).
        type_only: Count the imports under ``if TYPE_CHECKING:`` too (they never run, but a
            type that two modules need from each other is a circle all the same).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip: set[int] = set()
    if not type_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                for child in node.body:
                    skip.update(id(n) for n in ast.walk(child))
    found: list[tuple[str, int]] = []

    def add(name: str, line: int) -> None:
        # the longest known module that `name` is (or lies in)
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.append((name, line))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                full = f"{target}.{alias.name}"
                add(full if full in known else target, node.lineno)
    return sorted(set(found), key=lambda site: (site[1], site[0]))


def _files(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    return {_module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}


def build_graph(
    root: Path = ROOT, packages: tuple[str, ...] = PACKAGES, *, type_only: bool = False
) -> dict[str, set[str]]:
    """``{module: project modules it imports}`` for every module of ``packages``.

    ``type_only`` counts the imports under ``if TYPE_CHECKING:`` too (:func:`import_sites`).
    """
    files = _files(root, packages)
    known = set(files)
    return {
        m: {d for d, _ in import_sites(p, m, known, type_only=type_only)} for m, p in files.items()
    }


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
TYPED_GRAPH = build_graph(type_only=True)  # with the imports under TYPE_CHECKING
LAYERS = _layers()
LEVEL = {r: i for i, rooms in enumerate(LAYERS) for r in rooms}


# ------------------------------------------------------------------------------ order in packages

_ORDER = re.compile(r"<!-- order ([\w.]+) -->\n(.*?)<!-- /order -->", re.S)


def parse_orders(text: str) -> dict[str, list[list[str]]]:
    """Every ``<!-- order PKG -->`` block: ``{PKG: [[modules of item 1], [of item 2], …]}``.

    An item is a line ``N. `a`, `b` — what they hold``; the modules are the backquoted names
    before the dash (names after it belong to the description).
    """
    orders: dict[str, list[list[str]]] = {}
    for package, block in _ORDER.findall(text):
        items = []
        for line in block.splitlines():
            if re.match(r"^\d+\.\s", line.strip()):
                head = line.split(" — ", 1)[0]
                items.append(re.findall(r"`([\w.]+)`", head))
        orders[package] = items
    return orders


def package_modules(root: Path, package: str) -> set[str]:
    """The modules of ``package``: its files (``__init__`` aside) and its sub-packages."""
    folder = root.joinpath(*package.split("."))
    files = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
    return files | {p.parent.name for p in folder.glob("*/__init__.py")}


def order_problems(root: Path, package: str, items: list[list[str]]) -> list[str]:
    """Where ``package``'s modules break their order (docs/architecture.md), one line each.

    A module (a file of the package, or a sub-package as a whole) may import, type-only
    imports included, only modules of an earlier item; ``__init__`` may import anything of
    its package. Every module must be listed, once, and every listed name must exist.
    """
    level: dict[str, int] = {}
    problems = []
    for i, names in enumerate(items, 1):
        for name in names:
            if name in level:
                problems.append(f"`{name}` is listed twice (items {level[name]} and {i})")
            level.setdefault(name, i)
    have = package_modules(root, package)
    problems += [f"{package}.{m} is in no item of its order" for m in sorted(have - set(level))]
    problems += [
        f"`{m}` is listed but {package} has no such module" for m in sorted(set(level) - have)
    ]
    files = _files(root, (package.split(".")[0],))
    known = set(files)
    prefix = f"{package}."
    for module, path in sorted(files.items()):
        if not module.startswith(prefix):
            continue  # the package's __init__, or outside it
        own = module[len(prefix) :].split(".")[0]
        for dep, line in import_sites(path, module, known, type_only=True):
            where = f"{path.relative_to(root)}:{line}"
            if dep == package:
                problems.append(
                    f"{where}: {module} imports its package's __init__; import the name from "
                    "the module that defines it"
                )
                continue
            if not dep.startswith(prefix):
                continue
            other = dep[len(prefix) :].split(".")[0]
            if other == own or own not in level or other not in level:
                continue
            if level[other] >= level[own]:
                how = "the same item" if level[other] == level[own] else "a later item"
                problems.append(
                    f"{where}: {module} (item {level[own]}) imports {dep} (item {level[other]}, "
                    f"{how}); move what it needs into an earlier module"
                )
    return problems


ORDERS = parse_orders((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))


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
    """No circle, counting imports under ``TYPE_CHECKING`` too: a type-only circle is a type
    living in the wrong module (issue 20)."""
    assert _cycles(TYPED_GRAPH) == []


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
    """The meanings both the search and the analysis use are defined in the record package only.

    Every module of the two packages is parsed; a module-level assignment or ``def``/``class`` of
    one of these names anywhere but under ``loran_search/record/`` fails with its file:line (an
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
    record = ROOT / "loran_search" / "record"
    where: dict[str, list[str]] = defaultdict(list)
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Assign):
                    names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                    names = [node.target.id] if isinstance(node.target, ast.Name) else []
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names = [node.name]
                else:
                    continue
                for n in names:
                    if n in owned:
                        where[n].append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno}")
    inside = f"{record.relative_to(ROOT).as_posix()}/"
    owners = {n: [s for s in where[n] if s.startswith(inside)] for n in owned}
    not_once = {n: sites for n, sites in sorted(owners.items()) if len(sites) != 1}
    assert not_once == {}, "the record package defines each of these once, not so often"
    second = [
        f"{site}: {n} (the record package owns it: import it)"
        for n in sorted(owned)
        for site in where[n]
        if not site.startswith(inside)
    ]
    assert second == []


def test_the_orders_are_read() -> None:
    """docs/architecture.md holds the search's order; every block has items and names."""
    assert "loran_search.search" in ORDERS
    assert all(items and all(items) for items in ORDERS.values())


@pytest.mark.parametrize("package", sorted(ORDERS))
def test_modules_follow_their_package_order(package: str) -> None:
    """Every import inside an ordered package, type-only ones included, points to an earlier
    item of its ``<!-- order -->`` block (docs/architecture.md, "Order inside packages")."""
    problems = order_problems(ROOT, package, ORDERS[package])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("package", sorted(ORDERS))
def test_no_circle_in_an_ordered_package_counting_type_only_imports(package: str) -> None:
    inside = {
        m: {d for d in deps if d.startswith(f"{package}.")}
        for m, deps in TYPED_GRAPH.items()
        if m.startswith(f"{package}.")
    }
    assert _cycles(inside) == []


def test_the_order_check_catches_what_it_must(tmp_path: Path) -> None:
    """The mechanism on a tiny package: so the checks above cannot pass by seeing nothing."""
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from toy.top import go\n",
        "base.py": "X = 1\n",
        "mid.py": (
            "from typing import TYPE_CHECKING\n\nfrom toy.base import X\n\n"
            "if TYPE_CHECKING:\n    from toy.top import go\n"
        ),
        "peer.py": "def f():\n    from . import mid\n",
        "top.py": (
            "from toy import sub\nfrom toy.sub.deep import Y\nfrom toy.mid import X\n\n\n"
            "def go():\n    pass\n"
        ),
        "stray.py": "from toy import base\n",
        "sub/__init__.py": "",
        "sub/deep.py": "from toy.sub import __name__ as _\nfrom toy.base import X as Y\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text, encoding="utf-8")
    doc = (
        "<!-- order toy -->\n1. `base` — the ground (`mid` here is description)\n"
        "2. `mid`, `peer` — peers\n3. `sub`, `top`, `ghost` — the top\n<!-- /order -->\n"
    )
    orders = parse_orders(doc)
    assert orders == {"toy": [["base"], ["mid", "peer"], ["sub", "top", "ghost"]]}
    problems = order_problems(tmp_path, "toy", orders["toy"])
    text = "\n".join(problems)
    assert "toy/mid.py:6: toy.mid (item 2) imports toy.top (item 3, a later item)" in text
    assert "toy/peer.py:2: toy.peer (item 2) imports toy.mid (item 2, the same item)" in text
    assert "toy/top.py:1: toy.top (item 3) imports toy.sub (item 3, the same item)" in text
    assert "toy.stray is in no item of its order" in text
    assert "`ghost` is listed but toy has no such module" in text
    assert len(problems) == 6, text  # + top → sub.deep; the sub-package's own imports pass
    graph = build_graph(tmp_path, ("toy",), type_only=True)
    assert ["toy.mid", "toy.top"] in _cycles(graph)
    runtime = build_graph(tmp_path, ("toy",))
    assert "toy.top" not in runtime["toy.mid"]  # the type-only edge counts only when asked
    fixed = [["base"], ["mid", "stray"], ["peer", "sub"], ["top"]]
    (pkg / "mid.py").write_text("from toy.base import X\n", encoding="utf-8")
    assert order_problems(tmp_path, "toy", fixed) == []
