"""Sphinx configuration of the captum_freqrex documentation (built with -W: warnings are errors)."""

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

html_theme = "furo"
html_title = "captum_freqrex"
# Docstrings document private helpers by name; they are not part of the reference.
suppress_warnings = ["myst.header", "autosummary.import_cycle"]
