"""The package's modules import each other in layers: no cycles (counting imports inside
functions, which hide a cycle rather than remove it), an engine that knows no particular op
and no Tensor class, and no module completing another at import time (assigning into its
globals, or setattr onto Tensor)."""

import ast
from pathlib import Path

import autodiff

PACKAGE = Path(autodiff.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, level: int, name: str | None, is_package: bool) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports() -> dict[str, set[str]]:
    """module -> the autodiff modules it imports, anywhere in its body (TYPE_CHECKING-only
    imports excluded: they never run)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        checking = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                checking |= {id(n) for n in ast.walk(node)}
        targets = set()
        for node in ast.walk(tree):
            if id(node) in checking:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, node.level, node.module, path.name == "__init__.py")
                for alias in node.names:  # `from . import engine` imports autodiff.engine
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package's __init__ importing its own submodules is how packages are built;
            # a submodule importing its package back is the cycle this test forbids.
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_autodiff_package_has_no_import_cycle():
    assert _cycle(_imports()) is None, " -> ".join(_cycle(_imports()) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_engine_imports_no_op_and_no_tensor():
    assert _imports()["autodiff.engine"] == set()


def test_the_rules_know_the_engine_only():
    graph = _imports()
    for module, targets in graph.items():
        if module.startswith("autodiff.rules"):
            assert all(t == "autodiff.engine" or t.startswith("autodiff.rules") for t in targets), (
                module,
                targets,
            )


def test_no_module_completes_another_at_import_time():
    """No `engine.Tensor = Tensor` or `setattr(Tensor, ...)`: each module's names are its own."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
        for node in tree.body:  # module level: what runs at import
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                        assert target.value.id not in imported | {"Tensor"}, (
                            f"{path.name}: {ast.unparse(target)} assigned at import"
                        )
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                assert "setattr(Tensor" not in ast.unparse(node.value), path.name
            if isinstance(node, ast.For):
                assert "setattr(Tensor" not in ast.unparse(node), path.name
