"""The import rules, checked on the source text of every module (see
docs/concepts/architecture.md):

- a private module (``_name.py``) is imported only from inside its own package: everything
  else goes through the package's public names (in ``cirkit/``, ``recorders/``, ``tests/``
  and ``bench/`` alike);
- ``recorders`` never imports ``cirkit`` (the store knows nothing of CIR);
- nothing below the command line imports ``cirkit.cli``;
- the packages form no cycle: the graph of "package A imports package B" is acyclic, so the
  layers read bottom-up.

Ruff's banned-api cannot express "private to its own package" (it resolves a package's own
relative imports to the same banned name), and import-linter sees only importable packages, not
``tests/`` and ``bench/``; so the rule is this check, run by pytest in CI and by pre-commit.
Ruff's TID252 adds that a cross-package import is always spelled absolutely.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ("cirkit", "recorders", "tests", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _sources() -> Iterator[tuple[Path, str]]:
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            yield path, _module_name(path)


def _imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module or name imported) for every import in ``path``."""
    package = _package(module, path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from pkg import _private` imports a module too
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    yield node.lineno, f"{target}.{alias.name}"
    yield from _private_attributes(tree, package)


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _private_attributes(tree: ast.AST, package: str) -> Iterator[tuple[int, str]]:
    """``module._name`` where ``module`` names one of our modules: reaching into a private
    name through an attribute is the same import as ``from module import _name``."""
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    modules[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                if _is_module(f"{base}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{base}.{alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            yield node.lineno, f"{modules[node.value.id]}.{node.attr}"


def _private_owner(target: str) -> str | None:
    """The package a private module or name belongs to, else None: ``a.b._c`` -> ``a.b``,
    and ``a.b.mod._name`` -> ``a.b`` too (a module's private name is its package's)."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if i and part.startswith("_") and not part.startswith("__"):
            owner = parts[:i]
            if not (ROOT.joinpath(*owner) / "__init__.py").is_file() and len(owner) > 1:
                owner = owner[:-1]  # a name inside a module: the module's package owns it
            return ".".join(owner)
    return None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _ours(target: str) -> bool:
    return target.split(".")[0] in TREES


def test_no_module_imports_another_packages_private_module() -> None:
    bad = []
    for path, module in _sources():
        package = _package(module, path)
        for line, target in _imports(path, module):
            owner = _private_owner(target)
            if owner is not None and _ours(target) and not _inside(package, owner):
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {target} "
                           f"(private to {owner}; use its public names)")
    assert not bad, "\n".join(bad)


def test_recorders_never_imports_cirkit_and_only_the_cli_imports_the_cli() -> None:
    bad = []
    for path, module in _sources():
        for line, target in _imports(path, module):
            where = f"{path.relative_to(ROOT)}:{line}: imports {target}"
            if module.startswith("recorders") and _inside(target, "cirkit"):
                bad.append(where)
            if (module.startswith(("cirkit", "recorders")) and _inside(target, "cirkit.cli")
                    and not _inside(module, "cirkit.cli")):
                bad.append(where)
    assert not bad, "\n".join(bad)


def _unit(module: str) -> str:
    """The unit the layering is drawn between: a subpackage or top-level module of cirkit
    (``cirkit.sandbox``, ``cirkit.cir``, ``cirkit.errors``), or ``recorders``."""
    parts = module.split(".")
    if parts[0] == "recorders":
        return "recorders.backends" if module.startswith("recorders.backends") else "recorders"
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def test_the_packages_form_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path, module in _sources():
        if not module.startswith(("cirkit", "recorders")):
            continue
        src = _unit(module)
        for _, target in _imports(path, module):
            if _inside(target, "cirkit") or _inside(target, "recorders"):
                dst = _unit(target)
                if dst != src and dst not in ("cirkit", "recorders"):
                    graph.setdefault(src, set()).add(dst)
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


@pytest.mark.parametrize(("graph", "cycle"), [
    ({"a": {"b"}, "b": {"c"}}, None),
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
])
def test_the_cycle_finder_itself(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert _find_cycle(graph) == cycle


def test_the_private_rule_itself() -> None:
    assert _private_owner("cirkit.sandbox._pool") == "cirkit.sandbox"
    assert _private_owner("cirkit.sandbox._pool.X") == "cirkit.sandbox"
    assert _private_owner("cirkit.testing.vllm_env._run") == "cirkit.testing"
    assert _private_owner("cirkit.cli._Group") == "cirkit.cli"
    assert _private_owner("cirkit.sandbox") is None
    assert _private_owner("cirkit.__init__") is None
    assert _inside("cirkit.sandbox", "cirkit.sandbox")
    assert not _inside("cirkit.sandboxes", "cirkit.sandbox")
