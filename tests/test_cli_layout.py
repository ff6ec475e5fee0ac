"""The shape of the command line's code: no import circle (function-level imports included), no private names
across modules. (Function length is checked package-wide by tests/test_structure.py.)

``captum_freqrex/cli/`` is a package (parser and commands in ``__init__``, shared options in
``_common``, result folders in ``_explain``, comparison files in ``_compare``) and
``captum_freqrex/corpus/_cli.py`` (``explain-dataset``) uses ``cli._common``'s public names.
"""

import ast
from pathlib import Path

import pytest

import captum_freqrex

PACKAGE = Path(captum_freqrex.__file__).parent
CLI_FILES = sorted((PACKAGE / "cli").glob("*.py")) + [PACKAGE / "corpus" / "_cli.py"]


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """``(module, names)`` of every import statement of ``path``, at any depth (function-level too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            found.append((node.module or "", [alias.name for alias in node.names]))
    return found


def test_the_command_line_modules_import_no_circle():
    modules = {_module_name(path): path for path in CLI_FILES}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for module, names in _imports(path):
            # "from captum_freqrex.cli import _common" depends on the submodule; Python runs
            # cli/__init__ first, which imports corpus._cli only inside build_parser (at call time).
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            for target in submodules or [module]:
                if target in modules and target != name:
                    edges.add(target)
        graph[name] = edges
    # Both directions are expected to exist somewhere: cli registers explain-dataset, which uses _common.
    assert "captum_freqrex.corpus._cli" in graph["captum_freqrex.cli"]
    assert "captum_freqrex.cli._common" in graph["captum_freqrex.corpus._cli"]

    def visit(name, path):
        assert name not in path, f"import circle: {' -> '.join(path[path.index(name):] + [name])}"
        for target in sorted(graph[name]):
            visit(target, path + [name])

    for name in graph:
        visit(name, [])


@pytest.mark.parametrize("path", CLI_FILES, ids=lambda p: _module_name(p))
def test_no_private_name_of_the_command_line_crosses_modules(path):
    cli_modules = {_module_name(p) for p in CLI_FILES}
    private = [
        f"{module}.{name}"
        for module, names in _imports(path)
        if module in cli_modules
        for name in names
        if name.startswith("_") and f"{module}.{name}" not in cli_modules  # a submodule is fine
    ]
    # ``from captum_freqrex.cli import _common as common`` then ``common._x`` is a private read too.
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in cli_modules
        for alias in node.names
        if f"{node.module}.{alias.name}" in cli_modules
    }
    private += [
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
        and node.attr.startswith("_")
    ]
    assert not private, f"{path.name} uses private names of other modules: {private}"
