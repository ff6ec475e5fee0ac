"""Explanation -> files / report: the result of :meth:`FreqReX.explain` and what it becomes.

``explanation.py`` holds the data (:class:`Explanation`, :class:`CausalSet`, :class:`FeatureLayout`),
``manipulation.py`` the necessary-mode answer (:class:`Manipulation`), ``records.py`` its JSON summary, CSV and the records FreqReX writes into it, ``file.py`` saving
and loading. It imports only data types of ``captum_freqrex._core`` (never ``_core.freqrex``, which
builds explanations), and no audio I/O, plotting or report module at import time.
"""

from captum_freqrex._explanation.explanation import CausalSet, Explanation, FeatureLayout
from captum_freqrex._explanation.manipulation import Manipulation
from captum_freqrex._explanation.records import (
    MANIPULATION,
    QUIET_SUFFICIENT,
    SET_NAMES,
    class_confidences,
    package_versions,
    settings_record,
)

__all__ = [
    "Explanation",
    "CausalSet",
    "FeatureLayout",
    "Manipulation",
    "SET_NAMES",
    "MANIPULATION",
    "QUIET_SUFFICIENT",
    "class_confidences",
    "package_versions",
    "settings_record",
]
