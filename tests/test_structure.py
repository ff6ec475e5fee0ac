"""The package's shape: one-way imports, no import cycle, short functions, no private names across modules.

Read statically from the source (``ast``), so a violation fails here with the place to look, before
it shows up as an import error or a hard-to-follow call chain. See CONTRIBUTING ("Code layout").
"""

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

import captum_freqrex

PACKAGE = Path(captum_freqrex.__file__).parent
ROOT = PACKAGE.parent

#: The core's stages in data-flow order: a stage imports only the stages before it (and itself).
CORE_STAGES = ("records", "spectral", "model", "search", "certify")

#: Longest function body, in lines, docstring excluded (Captum-style docstrings are long on purpose).
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: Dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _top_level_imports(path: Path) -> Iterator[Tuple[str, List[str], int]]:
    """(module, imported names, line) of the imports that run when the module is imported:
    module level, including inside ``try`` / ``if`` blocks but not ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]

    def walk(body: List[ast.stmt]) -> Iterator[Tuple[str, List[str], int]]:
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, [], node.lineno
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    module = f"{base}.{module}" if module else base
                yield module, [a.name for a in node.names], node.lineno
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                    yield from walk(block)

    yield from walk(tree.body)


def _edges() -> Dict[str, Set[str]]:
    """Module -> the package's modules it imports at import time (``from pkg import mod`` included)."""
    graph: Dict[str, Set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names, _ in _top_level_imports(path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES] or [module]
            graph[name].update(t for t in targets if t in MODULES and t != name)
    return graph


def test_the_package_has_no_import_cycle():
    graph = _edges()
    assert sum(map(len, graph.values())) > 50, "the import graph is nearly empty: the parser is broken"
    state: Dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: List[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _stage(module: str):
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["captum_freqrex", "_core"] and parts[2] in CORE_STAGES:
        return CORE_STAGES.index(parts[2])
    return None


def test_core_stages_import_only_the_stages_before_them():
    graph = _edges()
    backwards = []
    for module, targets in graph.items():
        stage = _stage(module)
        if stage is None:
            continue
        for target in targets:
            if target.startswith("captum_freqrex._core.") and (_stage(target) is None or _stage(target) > stage):
                backwards.append(f"{module} imports {target}")
    checked = [m for m in graph if _stage(m) is not None]
    assert len(checked) >= 15, checked
    assert not backwards, "\n".join(backwards)


def _functions(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _body_lines(node) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        if isinstance(body[0].value.value, str):
            body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def test_no_function_is_longer_than_the_limit():
    long = []
    count = 0
    for path in MODULES.values():
        for node in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            count += 1
            lines = _body_lines(node)
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert count > 300, "the parser found too few functions"
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (docstring excluded):\n" + "\n".join(long)


def test_no_private_name_is_imported_from_another_module():
    crossing = []
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # function-level imports too
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{module}" if module else base
            if not module.startswith("captum_freqrex"):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{module}.{alias.name}" not in MODULES:
                    crossing.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {module}")
    assert not crossing, "\n".join(crossing)


@pytest.mark.parametrize("source, expected", [
    ("import a\nif TYPE_CHECKING:\n    import b\ntry:\n    import c\nexcept ImportError:\n    import d\n",
     ["a", "c", "d"]),
])
def test_the_import_reader_sees_what_runs_at_import_time(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    original = globals()["ROOT"]
    globals()["ROOT"] = tmp_path
    try:
        assert [m for m, _, _ in _top_level_imports(path)] == expected
    finally:
        globals()["ROOT"] = original


#: Underscore names that are public API of the standard library (namedtuple's methods).
STDLIB_UNDERSCORE_API = {"_replace", "_fields", "_asdict", "_make"}


def test_no_private_attribute_of_another_module_is_read():
    # ``thing._name`` where ``thing`` is not self/cls and no definition or assignment of ``_name``
    # is in the same module: a private member of another module's object.
    reaching = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                if node.attr not in own and node.attr not in STDLIB_UNDERSCORE_API:
                    reaching.append(f"{path.relative_to(ROOT)}:{node.lineno} reads {ast.unparse(node)}")
            elif isinstance(node, ast.keyword) and node.arg and node.arg.startswith("_"):
                reaching.append(f"{path.relative_to(ROOT)}:{node.value.lineno} passes {node.arg}=")
    assert not reaching, "\n".join(reaching)
