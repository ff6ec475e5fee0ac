"""The result of :meth:`FreqReX.explain`: responsibility, ranking and the certified causal sets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.extraction import ProbeResult, SetCertificate
from captum_freqrex._core.feature_space import FeatureSpace
from captum_freqrex._core.querier import QueryStats

SET_NAMES = ("sufficient", "sufficient_necessary", "complete")


def _rounded(value: float) -> Optional[float]:
    """JSON-safe: NaN and infinities become None."""
    return round(value, 6) if math.isfinite(value) else None


@dataclass
class CausalSet:
    r"""One certified set of frequency features.

    Attributes:
        name (str): ``"sufficient"``, ``"sufficient_necessary"`` or ``"complete"``.
        mask (Tensor): ``(n_features,)`` bool, the features in the set.
        n_bins (int): Number of frequency bins (grid cells) the features cover.
        certificate (SetCertificate): What the model said when re-queried on the set.
        energy_share (float): The set's share of the clip's spectral energy against the baseline
                    (``|X - Xb|^2`` summed over its bins, over the same sum for all bins), in [0, 1].
        level_db (float): The loudest bin of the set relative to the clip's loudest bin, in dB
                    (0 when the set holds the spectral peak; -40 means a bin 40 dB below it). A
                    set far below 0 dB is valid but may be inaudible next to the clip.
    """

    name: str
    mask: Tensor
    n_bins: int
    certificate: SetCertificate
    energy_share: float = float("nan")
    level_db: float = float("nan")

    @property
    def size(self) -> int:
        """Number of features in the set."""
        return self.certificate.size

    @property
    def certified(self) -> bool:
        """Whether the set's claim held when the model was queried on it again."""
        return self.certificate.certified

    @property
    def kept_confidence(self) -> float:
        """Confidence in the target with only this set kept."""
        return self.certificate.kept.confidence

    @property
    def flip_class(self) -> Optional[int]:
        """Class the model decides when the set is removed from the original (None if not queried)."""
        removed = self.certificate.removed
        return None if removed is None else removed.decided

    def as_dict(self) -> Dict[str, Any]:
        cert = self.certificate
        out = {
            "features": cert.size,
            "bins": self.n_bins,
            "certified": cert.certified,
            "minimal_size_resolved": cert.exact,
            "kept_class": cert.kept.decided,
            "kept_confidence": round(cert.kept.confidence, 6),
            "energy_share": _rounded(self.energy_share),
            "level_db": _rounded(self.level_db),
            "note": cert.note,
        }
        if cert.removed is not None:
            out["removed_class"] = cert.removed.decided
            out["removed_confidence"] = round(cert.removed.confidence, 6)
        return out


@dataclass
class Explanation:
    r"""The causal explanation of one example.

    Attributes:
        responsibility (Tensor or tuple of Tensor): Responsibility per frequency bin, shaped like the
                    feature grid: ``(freq,)`` for rfft features shared across channels, ``(channels,
                    freq)`` per channel, ``(freq, frames)`` for the STFT domain; a tuple for tuple inputs.
        feature_responsibility (Tensor): ``(n_features,)`` responsibility per feature (sums to 1 when
                    every search found a cause).
        ranking (Tensor): ``(n_features,)`` feature ids, most responsible first; ties (a piece the
                    search did not split) put the louder feature first.
        target (int): The explained decision (class index).
        original (ProbeResult): The model on the unmasked input.
        sufficient (CausalSet, optional): Smallest found prefix of the ranking that, kept alone,
                    keeps the decision. None when no prefix does.
        sufficient_necessary (CausalSet, optional): A sufficient set whose removal changes the
                    decision; its ``flip_class`` is the class the removal flips to.
        complete (CausalSet, optional): The sufficient-and-necessary set plus the features needed to
                    reach the original confidence within the tolerance.
        stats (QueryStats): Queries, forward calls, model time and total time of this example.
        responsibility_queries (int): Queries spent on responsibility.
        extraction_queries (int): Queries spent on extracting and certifying the sets.
        stopped_by (str): Why the responsibility search stopped: ``"searches"``, ``"converged"`` or
                    ``"max_queries"``; ``"attributions"`` when the ranking came from given attributions.
        baseline (ProbeResult, optional): The model on the baseline alone (every feature removed).
        warnings (list of str): Why (part of) this explanation cannot be taken at face value, in
                    plain words: the target is not the model's decision, the baseline alone already
                    gives the decision, a set did not hold on re-query, ... Empty when nothing is
                    wrong. Also issued as Python warnings by :meth:`FreqReX.explain`.
    """

    responsibility: Union[Tensor, Tuple[Tensor, ...]]
    feature_responsibility: Tensor
    ranking: Tensor
    target: int
    original: ProbeResult
    sufficient: Optional[CausalSet]
    sufficient_necessary: Optional[CausalSet]
    complete: Optional[CausalSet]
    stats: QueryStats
    responsibility_queries: int
    extraction_queries: int
    stopped_by: str
    _space: FeatureSpace = field(repr=False)
    _example: int = field(repr=False)
    _is_tuple: bool = field(default=False, repr=False)
    baseline: Optional[ProbeResult] = None
    warnings: List[str] = field(default_factory=list)

    @property
    def target_is_decision(self) -> bool:
        """Whether the unmasked input keeps the explained target (False: the target is not decided)."""
        return self.original.passes

    @property
    def baseline_decides(self) -> bool:
        """Whether the baseline alone already gives the target decision (the empty set suffices)."""
        return self.baseline is not None and self.baseline.passes

    @property
    def sets(self) -> Dict[str, Optional[CausalSet]]:
        """The three sets by name."""
        return {name: getattr(self, name) for name in SET_NAMES}

    @property
    def certified(self) -> bool:
        """True when every returned set held on re-query (missing sets are reported, not certified)."""
        return all(s is not None and s.certified for s in self.sets.values())

    @property
    def flip_class(self) -> Optional[int]:
        """The class the decision flips to when the sufficient-and-necessary set is removed."""
        return None if self.sufficient_necessary is None else self.sufficient_necessary.flip_class

    def _set(self, which: str) -> CausalSet:
        if which not in SET_NAMES:
            raise ValueError(f"which must be one of {SET_NAMES}, got {which!r}")
        chosen = getattr(self, which)
        if chosen is None:
            raise ValueError(f"this explanation has no {which} set (see Explanation.{which})")
        return chosen

    def waveform(self, which: str = "sufficient", removed: bool = False) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""Reconstruct a set as a waveform.

        Args:
            which (str, optional): ``"sufficient"``, ``"sufficient_necessary"`` or ``"complete"``.
                        Default: ``"sufficient"``
            removed (bool, optional): False gives the set alone (the rest at the baseline); True gives
                        the original with the set removed. Default: False

        Returns:
            Tensor or tuple of Tensor: Shaped like one example of the input: ``(time,)`` or
            ``(channels, time)``.
        """
        mask = self._set(which).mask.float()
        keep = (1.0 - mask) if removed else mask
        waves = tuple(w[0] for w in self._space.mutants(self._example, keep.view(1, -1)))
        return waves if self._is_tuple else waves[0]

    def original_waveform(self) -> Union[Tensor, Tuple[Tensor, ...]]:
        """The explained input, resynthesised from its spectrum; shaped like one example."""
        keep = torch.ones(1, self._space.n_features, device=self._space.device)
        waves = tuple(w[0] for w in self._space.mutants(self._example, keep))
        return waves if self._is_tuple else waves[0]

    def summary(self) -> Dict[str, Any]:
        """A JSON-serialisable summary: classes, confidences, set sizes, queries and time."""
        return {
            "target": self.target,
            "original_class": self.original.decided,
            "original_confidence": round(self.original.decided_confidence, 6),
            "target_confidence": round(self.original.confidence, 6),
            "target_is_decision": self.target_is_decision,
            "baseline_decides": self.baseline_decides,
            "warnings": list(self.warnings),
            "n_features": int(self.feature_responsibility.numel()),
            "flip_class": self.flip_class,
            "certified": self.certified,
            "sets": {name: (s.as_dict() if s is not None else None) for name, s in self.sets.items()},
            "responsibility_queries": self.responsibility_queries,
            "extraction_queries": self.extraction_queries,
            "stopped_by": self.stopped_by,
            **self.stats.as_dict(),
        }

    def save_wavs(self, directory: str, sample_rate: int) -> Dict[str, str]:
        r"""Write the original and every set (kept alone, and removed) as WAV files.

        Needs ``soundfile``. Args: directory (str): Output folder, created if missing.
        sample_rate (int): Sample rate in Hz. Returns: dict: file path per signal name.
        """
        from captum_freqrex.audio import save_explanation_wavs

        return save_explanation_wavs(self, directory, sample_rate)

    def plot(self, sample_rate: Optional[float] = None, **kwargs: Any) -> Any:
        r"""Plot the responsibility spectrum with the sets drawn on it (needs ``matplotlib``).

        Args:
            sample_rate (float, optional): Sample rate in Hz for a frequency axis; bins otherwise.
            **kwargs: Passed to :func:`captum_freqrex.plotting.plot_responsibility`.

        Returns:
            matplotlib.figure.Figure: The figure.
        """
        from captum_freqrex.plotting import plot_responsibility

        return plot_responsibility(self, sample_rate=sample_rate, **kwargs)
