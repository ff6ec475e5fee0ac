"""Layering: the core imports no audio I/O, plotting or report; those read results through public attributes.

Data flows one way (see STYLE.md): ``captum_freqrex._core`` knows nothing of the modules built on
it except ``captum_freqrex._explanation``, the result type it builds, which imports only data types
of the core. ``Explanation.save_wavs``, ``.plot``, ``.plot_spectrograms`` and ``.to_html`` import
the audio, plotting and report modules inside the method, so importing the package loads none.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import captum_freqrex
from captum_freqrex import FreqReX
from known_models import SAMPLE_RATE

PACKAGE = Path(captum_freqrex.__file__).parent
CORE_FILES = sorted((PACKAGE / "_core").rglob("*.py"))
EXPLANATION_FILES = sorted((PACKAGE / "_explanation").rglob("*.py"))

#: What the core must never import: optional third-party dependencies of the upper layers, and
#: the upper layers themselves.
FORBIDDEN = ("matplotlib", "soundfile", "captum_freqrex.audio", "captum_freqrex.plotting", "captum_freqrex.report")
UPPER_LAYERS = ("captum_freqrex.cli", "captum_freqrex.compare", "captum_freqrex.metrics", "captum_freqrex.zoo")

#: The only parts of the package the core may import.
CORE_MAY_IMPORT = ("captum_freqrex._core", "captum_freqrex._explanation", "captum_freqrex._utils", "captum_freqrex._version")

#: What ``_explanation`` may import at module level: data types of the core (never
#: ``_core.freqrex``, which builds explanations, nor the searches), itself and the utilities.
EXPLANATION_MAY_IMPORT = ("captum_freqrex._core", "captum_freqrex._explanation", "captum_freqrex._utils", "captum_freqrex._version")
EXPLANATION_MUST_NOT_IMPORT = ("captum_freqrex._core.freqrex", "captum_freqrex._core.search", "captum_freqrex._core.model.oracle")
#: The modules ``Explanation``'s rendering methods import inside the method, and nowhere else.
RENDERERS = ("captum_freqrex.audio", "captum_freqrex.plotting", "captum_freqrex.report")


def _within(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imported_names(path, module_level_only=False):
    """Every module an import statement (or a literal ``import_module``/``__import__`` call) of ``path`` names.

    ``module_level_only`` skips what functions import when they run (and ``if TYPE_CHECKING:`` blocks).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.parent.relative_to(PACKAGE.parent).as_posix().replace("/", ".")
    return _names_in(tree, package, module_level_only)


def _names_in(tree, package, module_level_only):
    names = []
    nodes = _module_level(tree) if module_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.append(module)
            # "from captum_freqrex import plotting" imports the module captum_freqrex.plotting.
            names += [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                names.append(str(node.args[0].value))
    return names


def _module_level(tree):
    """The nodes run at import time: everything outside function bodies and ``if TYPE_CHECKING:``."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(PACKAGE / "_core")))
def test_core_modules_import_nothing_from_the_layers_above(path):
    names = _imported_names(path)
    assert names or path.name == "__init__.py", "the parser found no imports at all"
    forbidden = [n for n in names if _within(n, FORBIDDEN + UPPER_LAYERS)]
    assert not forbidden, f"{path.name} imports {forbidden}"
    package_imports = [n for n in names if _within(n, ("captum_freqrex",))]
    # "from captum_freqrex._core.x import Name" also yields "captum_freqrex._core.x.Name": fine.
    outside = [n for n in package_imports if not _within(n, CORE_MAY_IMPORT)]
    assert not outside, f"{path.name} imports {outside} (the core may import only {CORE_MAY_IMPORT})"


@pytest.mark.parametrize("path", EXPLANATION_FILES, ids=lambda p: p.name)
def test_explanation_modules_import_only_data_of_the_core_and_render_lazily(path):
    everywhere = _imported_names(path)
    assert everywhere or path.name == "__init__.py", "the parser found no imports at all"
    builder = [n for n in everywhere if _within(n, EXPLANATION_MUST_NOT_IMPORT + UPPER_LAYERS)]
    assert not builder, f"{path.name} imports {builder}"
    at_import = _imported_names(path, module_level_only=True)
    eager = [n for n in at_import if _within(n, FORBIDDEN)]
    assert not eager, f"{path.name} imports {eager} at import time (import it inside the method)"
    outside = [n for n in at_import if _within(n, ("captum_freqrex",)) and not _within(n, EXPLANATION_MAY_IMPORT)]
    assert not outside, f"{path.name} imports {outside} at import time"
    later = [n for n in everywhere if _within(n, ("captum_freqrex",)) and not _within(n, EXPLANATION_MAY_IMPORT)]
    assert all(_within(n, RENDERERS) for n in later), f"{path.name} imports {later} (only the renderers, lazily)"


def test_the_module_level_walk_skips_imports_inside_functions_and_type_checking_only():
    # The check above relies on this: an import inside a method is skipped, one at the top is not.
    source = (
        "import soundfile\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import matplotlib\n"
        "class A:\n    def plot(self):\n        import captum_freqrex.plotting\n"
    )
    tree = ast.parse(source)
    assert sorted(_names_in(tree, "captum_freqrex._explanation", True)) == ["soundfile", "typing", "typing.TYPE_CHECKING"]
    assert "captum_freqrex.plotting" in _names_in(tree, "captum_freqrex._explanation", False)


_PROBE = r"""
import builtins, importlib, json, pkgutil, sys

imports = []
real_import = builtins.__import__

def spy(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    if importer == "captum_freqrex" or importer.startswith("captum_freqrex._"):
        imports.append([importer, name, list(fromlist or ()), level])
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = spy
import captum_freqrex
import captum_freqrex._core
import captum_freqrex._explanation
for package in (captum_freqrex._core, captum_freqrex._explanation):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
builtins.__import__ = real_import
print(json.dumps({"imports": imports, "loaded": sorted(sys.modules)}))
"""


def test_importing_the_package_and_every_core_module_loads_no_audio_io_or_plotting():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = set(report["loaded"])
    assert "captum_freqrex._explanation.file" in loaded and "captum_freqrex._core.freqrex" in loaded
    # Captum itself imports matplotlib (captum.attr's visualisation module), so matplotlib being
    # loaded says nothing about this package; what this package's own modules import does.
    for name in ("soundfile", "captum_freqrex.audio", "captum_freqrex.plotting", "captum_freqrex.report",
                 "captum_freqrex.cli", "captum_freqrex.compare"):
        assert name not in loaded, f"importing the core loaded {name}"
    ours = []
    for importer, name, fromlist, level in report["imports"]:
        targets = [name] + [f"{name}.{f}" for f in fromlist]
        if level == 0 and any(_within(t, FORBIDDEN) for t in targets):
            ours.append((importer, name, fromlist))
    assert not ours, f"the package's modules imported {ours}"
    assert report["imports"], "the import spy saw nothing"


# ------------------------------------------------------------------ plotting and report read public attributes

UPPER_FILES = [PACKAGE / "plotting.py", PACKAGE / "report.py", PACKAGE / "audio.py"]


@pytest.mark.parametrize("path", UPPER_FILES, ids=lambda p: p.name)
def test_plotting_report_and_audio_read_no_private_attribute(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    private = sorted(
        {
            f"line {node.lineno}: .{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not (node.attr.startswith("__") and node.attr.endswith("__"))
        }
    )
    assert not private, f"{path.name} reads private attributes: {private}"


class PublicOnly:
    """A stand-in for a result object that fails on any private attribute, and wraps what it returns."""

    def __init__(self, target):
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AssertionError(f"read the private attribute {name!r} of {type(self._target).__name__}")
        return _public_only(getattr(self._target, name))


def _public_only(value):
    if isinstance(value, dict):
        return {k: _public_only(v) for k, v in value.items()}
    if callable(value) or isinstance(value, (torch.Tensor, type)):
        return value  # a bound method runs on the real object: its internals are its own
    if type(value).__module__.startswith("captum_freqrex"):
        return PublicOnly(value)
    return value


@pytest.fixture(scope="module")
def explanation():
    from known_models import ToneDetector, tone

    g = torch.Generator().manual_seed(0)
    clip = (tone(440) + 0.5 * tone(1000) + 0.05 * torch.randn(SAMPLE_RATE, generator=g)).unsqueeze(0)
    return FreqReX(ToneDetector([440], threshold=0.5)).explain(clip, seed=0, max_queries=200)[0]


def test_plots_report_and_wavs_work_through_public_attributes_only(explanation, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("soundfile")
    import matplotlib.pyplot as plt

    from captum_freqrex.audio import save_explanation_wavs
    from captum_freqrex.plotting import plot_explanation_spectrograms, plot_responsibility
    from captum_freqrex.report import explanation_html

    proxy = PublicOnly(explanation)
    plt.close(plot_responsibility(proxy, sample_rate=SAMPLE_RATE))
    plt.close(plot_explanation_spectrograms(proxy, SAMPLE_RATE))
    assert "freqrex-summary" in explanation_html(proxy, SAMPLE_RATE)
    written = save_explanation_wavs(proxy, str(tmp_path), SAMPLE_RATE)
    assert os.path.isfile(written["sufficient"])
    with pytest.raises(AssertionError, match="private attribute '_space'"):
        getattr(proxy, "_space")  # noqa: B009 - the stand-in does catch private reads


# ------------------------------------------------------------------ Explanation's rendering methods


def test_the_methods_call_the_upper_layers(explanation, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = explanation.plot(sample_rate=SAMPLE_RATE)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "responsibility"
    plt.close(fig)
    path = explanation.to_html(str(tmp_path / "report.html"), SAMPLE_RATE)
    assert "freqrex-summary" in Path(path).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "blocked, call",
    [
        ("matplotlib.pyplot", lambda e, d: e.plot(sample_rate=SAMPLE_RATE)),
        ("matplotlib.pyplot", lambda e, d: e.plot_spectrograms(SAMPLE_RATE)),
        ("matplotlib.pyplot", lambda e, d: e.to_html(str(d / "r.html"), SAMPLE_RATE)),
        ("soundfile", lambda e, d: e.save_wavs(str(d), SAMPLE_RATE)),
    ],
    ids=["plot", "plot_spectrograms", "to_html", "save_wavs"],
)
def test_a_missing_extra_is_named(explanation, tmp_path, monkeypatch, blocked, call):
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(ImportError, match=r"pip install 'captum_freqrex\[audio\]'"):
        call(explanation, tmp_path)
