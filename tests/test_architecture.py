"""Guardrails for the package's shape (docs/architecture.md, DESIGN "Rooms"): no import circles,
rooms as subpackages, `core/` depends on no other room, only the engine imports torch at module
level, and the architecture page names the rooms that exist.

Fast on purpose: the source is parsed with `ast`, never imported.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "installation"
ARCH_DOC = ROOT / "docs" / "architecture.md"
TOP = "installation"
ENGINE = "installation.generation.engine"
# Importing these loads torch (seconds, gigabytes): only the engine may do it at module level.
HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate")
MAX_TOP_MODULES = 8
MIN_SUBPACKAGES = 5


# -- reading the package --------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    target: str  # the module named by the statement (absolute, dotted)
    names: tuple[str, ...]  # `from target import names`; () for `import target`
    line: int
    in_function: bool  # inside a def or lambda: runs when called, not at import time
    type_only: bool  # under `if TYPE_CHECKING:`: never runs


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(pkg: Path = PKG, root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name; a package is its `__init__.py`."""
    return {module_name(p, root): p for p in sorted(pkg.rglob("*.py")) if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module of `from <level dots><name> import ...` written in `module`."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: -(level - 1)] if level - 1 <= len(base) else []
    return ".".join(base + ([name] if name else []))


def imports_of(source: str, module: str, is_package: bool) -> list[Import]:
    """All import statements: module level, inside functions and classes, under TYPE_CHECKING."""
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, (), node.lineno, in_function, type_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            found.append(Import(target, tuple(a.name for a in node.names), node.lineno, in_function, type_only))
        inner_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, inner_function, True)
            for child in node.orelse:
                visit(child, inner_function, type_only)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, inner_function, type_only)

    visit(ast.parse(source), False, False)
    return found


def _ancestors(name: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b']"""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(imp: Import, importer: str, known: Iterable[str]) -> tuple[set[str], set[str]]:
    """(modules of the package this statement makes Python import, names that resolve to none).

    `import a.b.c` / `from a.b.c import x` import the packages `a` and `a.b` first (their
    `__init__.py`), then `a.b.c`; `from a.b import c` also imports `a.b.c` when `c` is a
    submodule. One exception: the importer's own parent packages are already initialised (or
    initialising) before its first line runs, so the implicit import of them is no edge; naming
    one explicitly (`import a.b`, `from a.b import name`) is, since that reads its namespace.
    """
    known = set(known)
    if imp.target != TOP and not imp.target.startswith(TOP + "."):
        return set(), set()
    own = set(_ancestors(importer))
    out = {p for p in _ancestors(imp.target) if p not in own}
    missing: set[str] = set()
    explicit_package = not imp.names
    for name in imp.names:
        sub = f"{imp.target}.{name}"
        if sub in known:
            out.add(sub)
        else:
            explicit_package = True  # a name read from the target module itself
    if imp.target in known:
        if explicit_package or imp.target not in own:
            out.add(imp.target)
    else:
        missing.add(imp.target)
    out.discard(importer)
    return out & known, missing


def build_graph(modules: Mapping[str, Path]) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """The import graph over the package's modules, and the installation imports that resolve to
    no module (by importer)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    unresolved: dict[str, list[str]] = {}
    for mod, path in modules.items():
        for imp in imports_of(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py"):
            edges, missing = imported_modules(imp, mod, modules)
            graph[mod] |= edges
            unresolved.setdefault(mod, []).extend(f"line {imp.line}: {m}" for m in sorted(missing))
    return graph, {m: v for m, v in unresolved.items() if v}


# -- cycles ---------------------------------------------------------------------------------


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as a path [a, b, ..., a].
    Tarjan's algorithm, iterative (no recursion limit on deep graphs)."""
    adj = {n: sorted(set(v)) for n, v in graph.items()}
    for targets in list(adj.values()):
        for t in targets:
            adj.setdefault(t, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(adj):
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = adj[node]
            if i < len(targets):
                work.append((node, i + 1))
                nxt = targets[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:  # returning to the caller: pass the low-link up
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in adj[node]:
                    components.append(sorted(comp))
    return [_cycle_in(comp, adj) for comp in sorted(components)]


def _cycle_in(component: list[str], adj: Mapping[str, list[str]]) -> list[str]:
    """The shortest cycle through the component's first node (breadth-first, inside it)."""
    members = set(component)
    start = component[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for t in adj[node]:
                if t == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if t in members and t not in prev:
                    prev[t] = node
                    nxt_frontier.append(t)
        frontier = nxt_frontier
    raise AssertionError(f"no cycle through {start} in its component")  # pragma: no cover


# -- the cycle finder and the import reader can fail ----------------------------------------


def test_find_cycles_on_synthetic_graphs():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"a"}}) == [["a", "a"]]
    two = find_cycles({"a": {"b"}, "b": {"a"}, "x": {"y"}, "y": {"z"}, "z": {"x"}, "q": {"a", "x"}})
    assert two == [["a", "b", "a"], ["x", "y", "z", "x"]]
    # a long chain back to the start: no recursion limit
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(5000)} | {"m5000": {"m0"}}
    assert len(find_cycles(chain)[0]) == 5002


def test_imports_are_read_everywhere_and_resolved(tmp_path):
    pkg = tmp_path / "installation"
    (pkg / "core").mkdir(parents=True)
    (pkg / "speech").mkdir()
    files = {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/messages.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..speech import worker\n",
        "core/worker.py": "from .messages import X\nfrom . import messages\n",
        "speech/__init__.py": "",
        "speech/worker.py": "def f():\n    import installation.core.worker\n",
        "speech/gone.py": "from installation.core.nothing import X\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    graph, unresolved = build_graph(package_modules(pkg, tmp_path))
    # TYPE_CHECKING + relative `from .. import <submodule>`, counting the package `speech`
    assert graph["installation.core.messages"] == {"installation.speech", "installation.speech.worker"}
    # its own package's __init__ is no edge when only reached through a dotted path
    assert graph["installation.core.worker"] == {"installation.core.messages"}
    # inside a function; the parent packages core/ and installation/ (its own ancestor: no edge)
    assert graph["installation.speech.worker"] == {"installation.core", "installation.core.worker"}
    assert unresolved == {"installation.speech.gone": ["line 1: installation.core.nothing"]}
    cycles = find_cycles(graph)
    assert cycles == [["installation.core.messages", "installation.speech.worker", "installation.core.worker",
                       "installation.core.messages"]]


# -- the package ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return package_modules()


@pytest.fixture(scope="module")
def graph(modules) -> dict[str, set[str]]:
    return build_graph(modules)[0]


def test_no_import_circles(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import circles (type-only and in-function imports included):\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles
    )


def test_every_installation_import_names_a_module(modules):
    _, unresolved = build_graph(modules)
    assert not unresolved, "imports of installation modules that do not exist:\n" + "\n".join(
        f"  {m} {line}" for m, lines in sorted(unresolved.items()) for line in lines
    )


def test_rooms_are_subpackages_and_the_top_stays_small():
    dirs = [d for d in PKG.rglob("*") if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))]
    no_init = sorted(str(d.relative_to(ROOT)) for d in dirs if not (d / "__init__.py").is_file())
    assert not no_init, f"folders of modules without an __init__.py: {no_init}"
    rooms = sorted(d.name for d in PKG.iterdir() if (d / "__init__.py").is_file())
    assert len(rooms) >= MIN_SUBPACKAGES, f"expected at least {MIN_SUBPACKAGES} subpackages, found {rooms}"
    top = sorted(p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules in installation/ itself, at most {MAX_TOP_MODULES}: {top}"


# Which rooms each room may import (besides itself). Every room may also read the show file's
# schema (installation.show), which imports no room. The top-level modules (app, cli, tools,
# docs, harness) and bench/ compose the rooms and may import any of them. docs/architecture.md
# explains each edge; this table keeps the page honest.
ROOM_DEPENDENCIES: dict[str, set[str]] = {
    "core": set(),
    "inputs": {"core"},
    "speech": {"core", "inputs"},  # inputs: the WAV reader and resampler (benchmarks, odd sample rates)
    "generation": {"core"},
    "display": {"core"},
    "control": {"core"},
    "vision": {"core"},
    "web": {"core", "control"},  # control: the one address table decides what a control accepts
    "soak": {"core"},  # the harness runs the app as a child process and talks to it over OSC and its log
}
SHARED = {TOP, "installation.show"}


def room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOM_DEPENDENCIES else None


def test_rooms_import_only_the_rooms_below_them(modules):
    bad = []
    for mod, path in modules.items():
        room = room_of(mod)
        if room is None:
            continue
        allowed = ROOM_DEPENDENCIES[room] | {room}
        for imp in imports_of(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py"):
            for target in imported_modules(imp, mod, modules)[0]:
                if target in SHARED:
                    continue
                if room_of(target) not in allowed:
                    bad.append(f"{path.relative_to(ROOT)}:{imp.line} ({room}/) imports {target}")
    assert not bad, "imports across rooms that docs/architecture.md does not allow:\n  " + "\n  ".join(bad)


def test_every_room_is_in_the_dependency_table():
    rooms = {d.name for d in PKG.iterdir() if (d / "__init__.py").is_file()} - {"bench"}
    assert rooms == set(ROOM_DEPENDENCIES)


def test_the_show_schema_imports_no_room(modules):
    path = modules["installation.show"]
    targets = {t for imp in imports_of(path.read_text(encoding="utf-8"), "installation.show", False)
               for t in imported_modules(imp, "installation.show", modules)[0]}
    assert targets <= {TOP}, targets


def test_only_the_engine_imports_torch_at_module_level(modules):
    bad = []
    for mod, path in modules.items():
        if mod == ENGINE or mod.startswith(ENGINE + "."):
            continue
        for imp in imports_of(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py"):
            if imp.in_function or imp.type_only:
                continue
            if imp.target.split(".")[0] in HEAVY:
                bad.append(f"{path.relative_to(ROOT)}:{imp.line} imports {imp.target}")
    assert not bad, (
        "only installation/generation/engine/ imports torch, diffusers or transformers at module level "
        "(elsewhere, import them inside the function that needs them):\n  " + "\n  ".join(bad)
    )


# -- the architecture page ------------------------------------------------------------------


def test_architecture_page_names_every_room_and_only_rooms_that_exist(modules):
    if not ARCH_DOC.is_file():
        pytest.fail(f"{ARCH_DOC.relative_to(ROOT)} is missing: it should name every subpackage as `name/`")
    text = ARCH_DOC.read_text(encoding="utf-8")
    # `core/`, `generation/engine/`, `installation/speech/`: a backticked path ending in "/"
    named = {m.removeprefix("installation/").rstrip("/") for m in re.findall(r"`([\w./-]+/)`", text)}
    named.discard("installation")
    packages = {
        str(p.parent.relative_to(PKG)).replace("\\", "/") for p in modules.values() if p.name == "__init__.py"
    } - {"."}
    unnamed = sorted(packages - named)
    assert not unnamed, f"{ARCH_DOC.name} does not name these subpackages (as `name/`): {unnamed}"
    # `tests/...` names a folder of the test tree; anything else a folder of the package.
    missing = sorted(n for n in named if not (ROOT / n if n.split("/")[0] == "tests" else PKG / n).is_dir())
    assert not missing, f"{ARCH_DOC.name} names folders that do not exist: {missing}"


def test_the_tests_mirror_the_rooms():
    rooms = sorted(d.name for d in PKG.iterdir() if (d / "__init__.py").is_file())
    without = [r for r in rooms if not list((ROOT / "tests" / r).glob("test_*.py"))]
    assert not without, f"rooms without a tests/<room>/ folder of tests: {without}"


# -- packaging ------------------------------------------------------------------------------


def test_pyproject_dependencies_match_requirements_txt():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pinned = [ln.split("#")[0].strip() for ln in lines]
    assert sorted(project["dependencies"]) == sorted(p for p in pinned if p), (
        "pyproject.toml [project] dependencies and requirements.txt list different packages"
    )


def test_test_files_have_unique_names():
    """The test folders have no __init__.py, so pytest imports each test file by its bare name:
    two with the same name in different rooms stop the whole run at collection."""
    tests = Path(__file__).resolve().parent
    names: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}
