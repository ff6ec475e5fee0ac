"""The fewest frequency features found whose removal changes the decision, and how loud that is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from torch import Tensor

from captum_freqrex._core.records import ProbeResult
from captum_freqrex._explanation.informative import manipulation_flags
from captum_freqrex._explanation.records import manipulation_record


@dataclass
class Manipulation:
    r"""The answer of ``explain(..., mode="necessary")``: the fewest frequency features found
    whose removal (the rest of the clip untouched) changes the model's decision, re-queried.

    Attributes:
        mask (Tensor): ``(n_features,)`` bool, the features removed.
        n_bins (int): Number of frequency bins (grid cells) the features cover.
        removed (ProbeResult): The model on the original with the features at the baseline,
                    re-queried on the waveform ``Explanation.waveform("manipulation",
                    removed=True)`` rebuilds.
        certified (bool): Whether that re-query changed the decision (a tie is no change) and the
                    model's output on the unmasked input held between calls.
        snr_db (float): How loud the change is: ``10 * log10(signal / change)`` over the waveforms
                    (the input's energy over that of the manipulated waveform minus the input),
                    as :func:`~captum_freqrex.metrics.perturbation_success_rate` reports it;
                    higher is quieter.
        energy_share (float): The removed features' share of the clip's spectral energy against
                    the baseline, in [0, 1].
        level_db (float): The loudest removed bin relative to the clip's loudest bin, in dB.
        note (str): What the re-query said.
    """

    mask: Tensor
    n_bins: int
    removed: ProbeResult
    certified: bool
    snr_db: float
    energy_share: float = float("nan")
    level_db: float = float("nan")
    note: str = ""

    @property
    def size(self) -> int:
        """Number of features removed."""
        return int(self.mask.sum())

    @property
    def feature_share(self) -> float:
        """The removed features' share of the features, in [0, 1]."""
        return self.size / max(1, int(self.mask.numel()))

    @property
    def flags(self) -> List[Dict[str, str]]:
        """Why the answer is no small manipulation, and what to do: ``{"flag", "reason",
        "next_step"}`` per flag (``"most_of_spectrum"``: over half the features; ``"most_of_sound"``:
        its change carries over half the clip's energy); empty otherwise."""
        return manipulation_flags(self.feature_share, self.snr_db)

    @property
    def flip_class(self) -> int:
        """The class the model decides once the features are removed."""
        return self.removed.decided

    def as_dict(self) -> Dict[str, Any]:
        """The set's verdict and loudness as a JSON-safe dict (see :meth:`Explanation.summary`)."""
        return manipulation_record(self)

    def __repr__(self) -> str:
        status = "certified" if self.certified else "NOT certified"
        return (f"Manipulation({self.size} feature{'s' * (self.size != 1)}, {self.n_bins} bin{'s' * (self.n_bins != 1)}, "
                f"SNR {self.snr_db:.1f} dB, flips to class {self.flip_class}, {status})")
