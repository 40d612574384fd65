"""The shape of the package the next engineer inherits (issue 28): small functions, a short estimator, no cycles."""

import ast
import inspect
from pathlib import Path

import scmatch
from scmatch.model import MatchModel

SRC = Path(scmatch.__file__).parent


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = (ast.parse(path.read_text()), path.name == "__init__.py")
    return out


def _code_lines(node: ast.AST) -> int:
    """Lines of a function without its docstring."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def test_no_function_over_80_lines():
    long = [
        f"{name}.{node.name}: {_code_lines(node)}"
        for name, (tree, _) in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _code_lines(node) > 80
    ]
    assert not long, long


def test_estimator_is_small():
    settings = [p for p in inspect.signature(MatchModel.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert len(settings) <= 10, [p.name for p in settings]
    assert len((SRC / "model" / "_model.py").read_text().splitlines()) < 400


def _imports(name: str, tree: ast.Module, is_package: bool) -> set[str]:
    """scmatch modules imported anywhere in a module, lazy imports in functions included (not under TYPE_CHECKING)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("scmatch")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("scmatch"):
                found.add(module)
                found |= {f"{module}.{a.name}" for a in node.names}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles of ``graph`` (module -> modules it imports). A submodule importing its own package is not
    counted (the package is already being imported); a package importing its submodules is an edge like any other."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if node.startswith(nxt + "."):  # a submodule importing its own package
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"p": {"p.x"}, "p.x": {"p"}, "q": {"p"}}) == []
    # the cycle this package had: model's package imports a submodule that imports pp, which imports model back
    graph = {"model": {"model._m"}, "model._m": {"pp._project"}, "pp._project": {"model"}}
    assert _cycles(graph) == [["model", "model._m", "pp._project", "model"]]


def test_no_import_cycle():
    modules = _modules()
    graph = {
        name: {m for m in _imports(name, tree, pkg) if m in modules and m != name}
        for name, (tree, pkg) in modules.items()
    }
    assert not _cycles(graph)
