"""Which source files make up a step's code: the part of its cache key that is code.

A step's behaviour depends on every first-party module it imports, directly or through
another module, and on imports made inside function bodies (the steps import lazily so
the cached path stays fast). Listing those modules by hand misses some: editing
``SLICE_COLUMNS`` in ``pipeline/schema.py`` once left evaluate served stale from the
cache. So the closure is computed from the source itself, with ``ast`` and
``importlib.util.find_spec``, without importing (executing) the modules it finds.

The adapter module (``pipeline.wiring``) holds one function per step: all of its source
is hashed, but only the imports of the module's top level, of the step's own function
and of the module-level functions that function calls are followed, so editing the
register step's dependencies does not retrain the model.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

FIRST_PARTY: Final[tuple[str, ...]] = ("pipeline", "training", "serving")
"""Top-level packages of this repository: their modules are code of a step; anything
else is a library, versioned by the lock file rather than by this key."""
FRAMEWORK: Final[tuple[str, ...]] = ("pipeline.runner", "pipeline.step_code")
"""The runner itself: it decides whether a step runs, not what the step computes, and it
imports every step's wiring, so following it would make each step depend on all of them."""


@lru_cache(maxsize=1024)
def _spec_origin(name: str) -> tuple[Path, bool] | None:
    """(source file, is a package) of a first-party module, or None when it is not one."""
    if name.split(".", 1)[0] not in FIRST_PARTY or name in FRAMEWORK:
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin), spec.submodule_search_locations is not None


@lru_cache(maxsize=512)
def _parse(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_bytes(), filename=str(path))


def _tree(path: Path) -> ast.Module:
    return _parse(path, path.stat().st_mtime_ns)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imported_names(nodes: Iterable[ast.AST], module: str, is_package: bool) -> list[str]:
    """Module names the import statements among ``nodes`` (walked recursively) may load."""
    names: list[str] = []
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(node, module, is_package)
                names.append(target)
                # ``from pipeline import plots`` imports the submodule pipeline.plots.
                names.extend(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__``."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _resolve(names: Iterable[str]) -> list[tuple[str, Path, bool]]:
    found: list[tuple[str, Path, bool]] = []
    for name in names:
        for candidate in _with_parents(name):
            parent = candidate.rpartition(".")[0]
            # find_spec on ``module.attribute`` would import ``module``; only ask for
            # children of packages.
            if parent and (origin := _spec_origin(parent)) is not None and not origin[1]:
                break
            origin = _spec_origin(candidate)
            if origin is None:
                break
            found.append((candidate, *origin))
    return found


def _function_nodes(tree: ast.Module, entry: str) -> list[ast.AST]:
    """The module's top-level statements other than functions and classes, the function
    ``entry`` and every module-level function it names, transitively."""
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    nodes: list[ast.AST] = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    pending, seen = [entry], set()
    while pending:
        name = pending.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        function = functions[name]
        nodes.append(function)
        pending.extend(n.id for n in ast.walk(function) if isinstance(n, ast.Name) and n.id in functions)
    return nodes


def code_files(sources: Sequence[str], entry: Callable[..., Any] | None = None) -> list[Path]:
    """Every first-party source file a step's code consists of, sorted.

    ``sources`` are modules whose whole source belongs to the step; ``entry`` is the
    step's function (an adapter in ``pipeline.wiring``), whose module is hashed whole
    but followed only from that function. Raises ``ImportError`` naming a declared
    source that cannot be found.
    """
    files: dict[Path, None] = {}
    queue: list[tuple[str, Path, bool, list[ast.AST] | None]] = []
    for name in sources:
        resolved = _resolve([name])
        if not resolved or resolved[-1][0] != name:
            raise ImportError(f"cannot find the source of module {name}")
        queue.extend((n, p, pkg, None) for n, p, pkg in resolved)
    if entry is not None:
        for name, path, is_package in _resolve([entry.__module__]):
            nodes = _function_nodes(_tree(path), entry.__name__) if name == entry.__module__ else None
            queue.append((name, path, is_package, nodes))
    done: set[str] = set()
    while queue:
        name, path, is_package, nodes = queue.pop()
        files[path] = None
        if name in done and nodes is None:
            continue
        if nodes is None:
            done.add(name)
        imported = _imported_names(nodes if nodes is not None else [_tree(path)], name, is_package)
        queue.extend((n, p, pkg, None) for n, p, pkg in _resolve(imported) if n not in done)
    return sorted(files)
