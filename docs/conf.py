"""Sphinx configuration of the captum_freqrex documentation (built with -W: warnings are errors)."""

import filecmp
import os
import shutil
from pathlib import Path

_DOCS = Path(__file__).resolve().parent


def _copy_tutorials() -> None:
    """Mirror ``../tutorials/*.ipynb`` into ``docs/tutorials/`` (gitignored), where Sphinx can read them.

    The notebooks live at the top of the repository, outside the Sphinx source folder; they are
    stored without outputs and executed by myst-nb at every build (``nb_execution_mode``). Copies
    are only rewritten when their content changed, and copies of deleted notebooks are removed.
    """
    source, target = _DOCS.parent / "tutorials", _DOCS / "tutorials"
    target.mkdir(exist_ok=True)
    wanted = {path.name: path for path in source.glob("*.ipynb")}
    for stale in target.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name, path in wanted.items():
        copy = target / name
        if not copy.exists() or not filecmp.cmp(path, copy, shallow=False):
            shutil.copyfile(path, copy)


_copy_tutorials()
# Captum imports tqdm.auto, which warns in a Jupyter kernel without ipywidgets; the kernels that
# execute the notebooks inherit this environment.
os.environ.setdefault("PYTHONWARNINGS", "ignore:IProgress not found")
# One intra-op thread per executing kernel: the notebooks' models are small, and on a shared
# machine torch's spinning worker threads make a multi-threaded run several times slower (the
# pipeline tutorial: 306 s with 2 threads next to two busy processes on 2 cores, 21 s with one).
# An OMP_NUM_THREADS already set in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "captum_freqrex"
author = "captum_freqrex developers"
copyright = "2026, captum_freqrex developers"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
nitpicky = False

exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
# Headings get anchors (page.md#a-heading) down to ###, for links between the pages.
myst_heading_anchors = 3

html_theme = "furo"
html_title = "captum_freqrex"
# Docstrings document private helpers by name; they are not part of the reference.
suppress_warnings = ["myst.header", "autosummary.import_cycle"]
