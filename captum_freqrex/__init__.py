"""captum_freqrex: causal responsibility explanations of audio classifiers in the frequency domain.

FreqReX is a Captum :class:`~captum.attr.PerturbationAttribution` that ranks frequency features
(rfft bins, bands of bins, or STFT cells) by their causal responsibility for a classifier's
decision and extracts certified sufficient, sufficient-and-necessary and complete sets.
"""

from captum_freqrex._core.spectral.bands import linear_bands, log_bands, mel_bands
from captum_freqrex._core.model.decision import (
    ArgmaxDecision,
    Decision,
    FunctionDecision,
    RowVerdicts,
    ThresholdDecision,
)
from captum_freqrex._core.spectral.domains import RfftDomain, SpectralDomain, StftDomain, next_fast_len
from captum_freqrex._core.records import ProbeResult, SetCertificate
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._core.forward_wrapper import FrequencyForward
from captum_freqrex._core.freqrex import FreqReX
from captum_freqrex._core.options import FreqReXOptions
from captum_freqrex._core.certify.trust import FreqReXWarning
from captum_freqrex._core.records import QueryStats
from captum_freqrex._core.search.adaptive import AdaptiveRefinement
from captum_freqrex._core.search.auto import AutoSearch
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.partition import PartitionRefinement
from captum_freqrex._core.search.base import SearchContext, SearchResult
from captum_freqrex._core.records import AlternativesReport, ShrinkReport
from captum_freqrex._explanation import CausalSet, Explanation, FeatureLayout, Manipulation
from captum_freqrex._version import __version__ as __version__

__all__ = [
    "FreqReX",
    "FreqReXOptions",
    "FreqReXWarning",
    "FrequencyForward",
    "FeatureSpace",
    "Explanation",
    "CausalSet",
    "Manipulation",
    "FeatureLayout",
    "SetCertificate",
    "ProbeResult",
    "QueryStats",
    "AutoSearch",
    "PartitionRefinement",
    "AdaptiveRefinement",
    "BandScreening",
    "SearchContext",
    "SearchResult",
    "ShrinkReport",
    "AlternativesReport",
    "Decision",
    "RowVerdicts",
    "ArgmaxDecision",
    "ThresholdDecision",
    "FunctionDecision",
    "SpectralDomain",
    "RfftDomain",
    "StftDomain",
    "next_fast_len",
    "linear_bands",
    "log_bands",
    "mel_bands",
]
