"""Perturbation success rate: alter the top-k features of a ranking and count decision changes."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor

from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.model.targets import TargetLike
from captum_freqrex._utils.validation import TensorOrTuple
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL
from captum_freqrex._utils.snr import snr_from_energies
from captum_freqrex.metrics._common import MetricRun


class PerturbationResult(NamedTuple):
    r"""Results of :func:`perturbation_success_rate`.

    Shapes are given for ``k`` a sequence of ``L`` sizes; for ``k`` an int the ``L`` dimension is
    dropped (``(B, L) -> (B,)``, ``(L,) -> ()``).

    Attributes:
        flipped (Tensor): ``(B, L)`` bool, the perturbed input clearly departs from the target
                    decision (:meth:`Decision.changes`: a tie within the decision's tie tolerance is
                    no flip).
        success_rate (Tensor): ``(L,)`` float, the fraction of examples flipped, in [0, 1].
        snr_db (Tensor): ``(B, L)`` float64, SNR of each change in dB: signal = the original
                    waveform, noise = perturbed - original (``+inf`` when nothing changes).
        decided (Tensor): ``(B, L)`` long, the class decided on the perturbed input.
        confidence (Tensor): ``(B, L)`` float64, confidence in the target on the perturbed input.
        k (Tensor): ``(L,)`` long, the numbers of features perturbed.
        target (Tensor): ``(B,)`` long, the (flattened) target index of each example.
    """

    flipped: Tensor
    success_rate: Tensor
    snr_db: Tensor
    decided: Tensor
    confidence: Tensor
    k: Tensor
    target: Tensor

    def to_tensor(self) -> Tensor:
        r"""The per-example value, a tensor as :mod:`captum.metrics` returns: ``flipped``
        (bool; ``success_rate`` is its mean over the examples).

        Returns:
            Tensor: ``(B, L)``, or ``(B,)`` for an int ``k``: the same tensor as ``.flipped`` (not a
            copy).
        """
        return self.flipped


def perturbation_success_rate(
    forward_func: Callable,
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    baselines: Any = None,
    target: TargetLike = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    max_examples_per_batch: Optional[int] = None,
    *,
    k: Union[int, Sequence[int]] = 1,
    factor: float = 0.0,
    domain: Optional[SpectralDomain] = None,
    per_channel: bool = False,
    decision: DecisionLike = None,
    rank_rtol: float = DEFAULT_RTOL,
    output: Any = None,
) -> PerturbationResult:
    r"""Alter the top-``k`` features of an attribution ranking; how often does the decision change?

    Features are ranked by descending attribution (a feature scores the mean over its bins; ties go
    to the louder feature, then to the lower index). For each example and each ``k``, the top-``k`` features are
    multiplied by ``factor`` (their difference to the baseline's spectrum is, for a non-zero
    baseline): ``factor=0`` removes them, ``0.5`` halves their amplitude, ``-1`` inverts their
    phase. All ``B * len(k)`` perturbed inputs are evaluated in one batched pass. Rank by
    ``attributions.abs()`` to perturb the most influential features of either sign.

    Args:
        forward_func (Callable): The model: maps waveforms (plus ``additional_forward_args``) to
                    scores ``(N, K)``, ``(N,)`` or ``(N, ...)``.
        inputs (Tensor or tuple of Tensor): Waveforms ``(B, T)`` or ``(B, C, T)``, batch first.
        attributions (Tensor or tuple of Tensor): Any method's attributions over the frequency
                    feature grid, ``(B, *feature_grid)``: what :meth:`FreqReX.attribute` and
                    FrequencyForward-based Captum methods return.
        baselines (scalar, Tensor or tuple, optional): What removed features become, as in
                    :meth:`FreqReX.attribute`. Default: None (zeros)
        target (int, tuple, Tensor or list, optional): The decision per example, as in Captum. None
                    is the model's own decision on the unmasked input. Default: None
        additional_forward_args (Any, optional): Passed to the model after the waveforms; tensors
                    whose first dimension is ``B`` are indexed per perturbed input. Default: None
        feature_mask (Tensor or tuple of Tensor, optional): Rank and perturb features (groups of
                    bins) rather than single bins. Default: one feature per bin
        max_examples_per_batch (int, optional): Most perturbed inputs per model call. Default: None
                    (a memory-bounded size, at most 128)
        k (int or sequence of int, optional): Numbers of top features to perturb, each in
                    ``[0, n_features]``, e.g. ``[1, 5, 10]``. Default: 1
        factor (float, optional): Multiplier of the perturbed features' coefficients.
                    Default: 0.0 (removal)
        domain (SpectralDomain, optional): The feature transform. Default: rfft
        per_channel (bool, optional): Per-channel features for ``(B, C, T)`` inputs. Default: False
        decision (str, Decision or Callable, optional): When the decision is kept. Default: None
        rank_rtol (float, optional): Scores within this relative width share a tier of the
                    ranking, inside which the louder feature comes first (see
                    :func:`captum_freqrex._core.certify.ranking.rank_features`); ``0`` breaks exact ties only
                    (for rankings whose fine order is the point, e.g. a random baseline).
                    Default: 0.1
        output (str, int or Callable, optional): Where the scores are in what the model returns,
                    as for :class:`FreqReX` (``"logits"``, a tuple index, or a function). Default:
                    None (a tensor; ``.logits``, a ``"logits"`` key or a tuple's first element)

    Returns:
        PerturbationResult: ``flipped``, ``success_rate``, ``snr_db`` (dB), ``decided``,
        ``confidence``, ``k`` and ``target``.

    Example::

        >>> attr = FreqReX(model).attribute(clips)
        >>> result = perturbation_success_rate(model, clips, attr, k=[1, 5])
        >>> result.success_rate          # fraction flipped by changing 1 and 5 frequencies
        >>> result.snr_db.median(0)      # how loud those changes are
    """
    if not math.isfinite(factor):
        raise ValueError(f"factor must be a finite number, got {factor}")
    run = MetricRun(
        forward_func, inputs, baselines, target, additional_forward_args, feature_mask,
        max_examples_per_batch, domain, per_channel, decision, output=output,
    )
    sizes, single = run.sizes(k)
    positions = run.positions(attributions, rank_rtol)
    n_sizes = len(sizes)
    device = run.space.device
    examples = torch.arange(run.batch_size, device=device).repeat_interleave(n_sizes)
    row_sizes = torch.tensor(sizes, device=device).repeat(run.batch_size)

    verdicts = run.evaluate_prefixes(positions, examples, row_sizes, top=factor, rest=1.0)
    verdicts = verdicts.view(run.batch_size, n_sizes)
    flipped = verdicts.changes
    snr = snr_from_energies(run.signal_energy.unsqueeze(1), verdicts.noise_energy)
    result = PerturbationResult(
        flipped,
        flipped.double().mean(0),
        snr,
        verdicts.decided,
        verdicts.confidence,
        torch.tensor(sizes, dtype=torch.long),
        run.targets,
    )
    if single:
        result = result._replace(**{name: getattr(result, name)[..., 0] for name in result._fields[:-1]})
    return result
