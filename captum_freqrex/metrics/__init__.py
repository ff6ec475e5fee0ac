"""Metrics of explanations in the frequency domain, in the style of :mod:`captum.metrics`.

Plain functions, no gradients: each takes the model first, then waveforms and either a set of
frequency features or any method's attributions over the frequency feature grid
(``(B, *feature_grid)``, as :meth:`FreqReX.attribute` and FrequencyForward-based Captum methods
return), queries the model on mutants in batches of at most ``max_examples_per_batch`` and returns
one value per example. One call per method therefore compares methods on equal terms.

* :func:`sufficiency` / :func:`necessity` — does keeping only / removing a set keep / change the
  decision?
* :func:`perturbation_success_rate` — alter the top-k features of a ranking; flips, success rate,
  SNR of each change.
* :func:`insertion_curve` / :func:`deletion_curve` — confidence as top features are inserted /
  deleted, and the AUC; :func:`minimal_sufficient_prefix` — the first sufficient top-k, and
  whether sufficiency was monotone along the ranking.
* :func:`explanation_size` — features, share of bins and of spectral energy; :func:`snr_db`.
* :func:`transferability` — feed one model's sufficient signals to other models of the same task:
  per target model and class, how many they accept (and how many full clips they already decide
  the same way).

Every metric calls the model through one caller, with FreqReX's output checks (a real
floating-point tensor, one row per waveform, finite scores), on copies of the caller's waveforms,
and reads every batch of mutants with one decision fixed from the outputs on the unmasked inputs.
"""

from captum_freqrex.metrics._curves import (
    CurveResult,
    PrefixResult,
    deletion_curve,
    insertion_curve,
    minimal_sufficient_prefix,
)
from captum_freqrex.metrics._perturbation import PerturbationResult, perturbation_success_rate
from captum_freqrex.metrics._sets import NecessityResult, SufficiencyResult, necessity, sufficiency
from captum_freqrex.metrics._size import SizeResult, explanation_size, snr_db
from captum_freqrex.metrics._transfer import TransferResult, transferability

__all__ = [
    "sufficiency",
    "necessity",
    "perturbation_success_rate",
    "insertion_curve",
    "deletion_curve",
    "minimal_sufficient_prefix",
    "explanation_size",
    "snr_db",
    "transferability",
    "SufficiencyResult",
    "NecessityResult",
    "PerturbationResult",
    "CurveResult",
    "PrefixResult",
    "SizeResult",
    "TransferResult",
]
