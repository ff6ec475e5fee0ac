"""One example's view of a call: its waveforms, its feature space and the one caller of the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

from torch import Tensor

from captum_freqrex._core.model.oracle import Oracle
from captum_freqrex._core.records import ProbeResult
from captum_freqrex._core.spectral.rows import RowBuffer
from captum_freqrex._core.spectral.space import FeatureSpace


@dataclass(frozen=True)
class ExampleQueries:
    r"""What every stage needs to query the model about one example of the batch.

    Attributes:
        oracle (Oracle): The one caller of the model (batches, checks, counts, decides).
        space (FeatureSpace): The batch's features and spectra.
        waves (tuple of Tensor): The batch's waveforms ``(B, ...)``, one per input tensor.
        example (int): Which example of the batch.
    """

    oracle: Oracle
    space: FeatureSpace
    waves: Tuple[Tensor, ...]
    example: int

    @property
    def inputs(self) -> Tuple[Tensor, ...]:
        """The example's unmasked waveforms, one per input tensor."""
        return tuple(w[self.example] for w in self.waves)

    @property
    def rows(self) -> RowBuffer:
        """Model-input rows reused by every query of the call."""
        assert self.oracle.rows is not None
        return self.oracle.rows

    def keep_scores(self, keeps: Tensor) -> Tensor:
        """Model outputs ``(N, K)`` on the mutants of keep-masks ``(N, n_features)``, a model batch at a time."""
        return self.oracle.keep_scores(self.space, self.example, keeps.shape[0], lambda lo, hi: keeps[lo:hi])

    def keep_scores_of(self, n_rows: int, keeps: Callable[[int, int], Tensor]) -> Tensor:
        """Like :meth:`keep_scores`, with the masks of rows ``[lo, hi)`` built per model call by ``keeps(lo, hi)``."""
        return self.oracle.keep_scores(self.space, self.example, n_rows, keeps)

    def set_scores(self, keeps: Sequence[Tensor], with_input: bool = False) -> Tensor:
        """Model outputs, one row per keep-mask ``(n_features,)``, each set's waveform synthesised on
        its own exactly as ``Explanation.waveform`` rebuilds it (so a certificate holds on the
        waveform the user gets); then, ``with_input``, one row on the unmasked input."""

        def waveforms(i: int) -> Tuple[Tensor, ...]:
            if i == len(keeps):
                return self.inputs
            return tuple(w[0] for w in self.space.mutants(self.example, keeps[i].view(1, -1)))

        return self.oracle.waveform_scores(self.example, len(keeps) + int(with_input), waveforms)

    def probes(self, outputs: Tensor, target: int) -> List[ProbeResult]:
        """The decision's reading of score rows ``(N, K)`` for ``target``, one :class:`ProbeResult` per row."""
        return self.oracle.verdicts(outputs, target).probes()
