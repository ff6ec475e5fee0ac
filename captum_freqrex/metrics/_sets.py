"""Sufficiency and necessity of a given set of frequency features."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import torch
from torch import Tensor

from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.model.targets import TargetLike
from captum_freqrex._utils.validation import TensorOrTuple
from captum_freqrex.metrics._common import MetricRun, ChangeVerdicts


class SufficiencyResult(NamedTuple):
    r"""Per-example results of :func:`sufficiency`, each a ``(B,)`` tensor.

    Attributes:
        sufficient (Tensor): bool, the set kept alone (every other feature at the baseline) keeps
                    the target decision.
        confidence (Tensor): Confidence in the target with only the set kept, in [0, 1].
        decided (Tensor): long, the class the model decides with only the set kept.
        original_confidence (Tensor): Confidence in the target on the unmasked input.
        target (Tensor): long, the (flattened) target index of each example.
    """

    sufficient: Tensor
    confidence: Tensor
    decided: Tensor
    original_confidence: Tensor
    target: Tensor

    def to_tensor(self) -> Tensor:
        r"""The per-example value, a tensor as :mod:`captum.metrics` returns: ``sufficient``
        (bool).

        Returns:
            Tensor: ``(B,)``, the same tensor as ``.sufficient`` (not a copy).
        """
        return self.sufficient


class NecessityResult(NamedTuple):
    r"""Per-example results of :func:`necessity`, each a ``(B,)`` tensor.

    Attributes:
        necessary (Tensor): bool, the unmasked input keeps the target decision and removing the set
                    (setting it to the baseline, keeping everything else) changes it (clearly: a tie
                    within the decision's tie tolerance is no change).
        confidence (Tensor): Confidence in the target with the set removed, in [0, 1].
        decided (Tensor): long, the class the model decides with the set removed (the class a
                    removal flips to).
        original_confidence (Tensor): Confidence in the target on the unmasked input.
        target (Tensor): long, the (flattened) target index of each example.
    """

    necessary: Tensor
    confidence: Tensor
    decided: Tensor
    original_confidence: Tensor
    target: Tensor

    def to_tensor(self) -> Tensor:
        r"""The per-example value, a tensor as :mod:`captum.metrics` returns: ``necessary``
        (bool).

        Returns:
            Tensor: ``(B,)``, the same tensor as ``.necessary`` (not a copy).
        """
        return self.necessary


def _set_verdicts(run: MetricRun, feature_set: TensorOrTuple, keep_set: bool) -> ChangeVerdicts:
    members = run.feature_set(feature_set)
    keep = members if keep_set else ~members
    examples = torch.arange(run.batch_size, device=run.space.device)
    return run.evaluate(examples, lambda rows: keep[rows].double())


def sufficiency(
    forward_func: Callable,
    inputs: TensorOrTuple,
    feature_set: TensorOrTuple,
    baselines: Any = None,
    target: TargetLike = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    max_examples_per_batch: Optional[int] = None,
    *,
    domain: Optional[SpectralDomain] = None,
    per_channel: bool = False,
    decision: DecisionLike = None,
    output: Any = None,
) -> SufficiencyResult:
    r"""Does keeping only ``feature_set`` keep the model's decision?

    Each example's mutant keeps the features of the set and sets every other feature to the
    baseline's spectrum (removes it, for the default zero baseline). No gradients are used.

    Args:
        forward_func (Callable): The model: maps waveforms (plus ``additional_forward_args``) to
                    scores ``(N, K)``, ``(N,)`` or ``(N, ...)``.
        inputs (Tensor or tuple of Tensor): Waveforms ``(B, T)`` or ``(B, C, T)``, batch first.
        feature_set (Tensor or tuple of Tensor): The set, bool (or 0/1) shaped like the
                    attributions, ``(B, *feature_grid)`` (or ``(*feature_grid)`` for every
                    example). With a ``feature_mask``, sets are made of whole features: a feature
                    belongs to the set when any of its bins does.
        baselines (scalar, Tensor or tuple, optional): The waveform whose spectrum replaces removed
                    features, as in :meth:`FreqReX.attribute`. Default: None (zeros: removal)
        target (int, tuple, Tensor or list, optional): The decision to test per example, as in
                    Captum. None is the model's own decision on the unmasked input. Default: None
        additional_forward_args (Any, optional): Passed to the model after the waveforms; tensors
                    whose first dimension is ``B`` are indexed per mutant. Default: None
        feature_mask (Tensor or tuple of Tensor, optional): Integer ids grouping bins into features,
                    as for :class:`FreqReX`. Default: one feature per bin
        max_examples_per_batch (int, optional): Most mutants per model call. Default: None (a
                    memory-bounded size, at most 128)
        domain (SpectralDomain, optional): The feature transform. Default: rfft
        per_channel (bool, optional): Per-channel features for ``(B, C, T)`` inputs. Default: False
        decision (str, Decision or Callable, optional): When the decision is kept, as for
                    :class:`FreqReX`. Default: None (argmax, or a 0.5 threshold for one output)
        output (str, int or Callable, optional): Where the scores are in what the model returns,
                    as for :class:`FreqReX` (``"logits"``, a tuple index, or a function). Default:
                    None (a tensor; ``.logits``, a ``"logits"`` key or a tuple's first element)

    Returns:
        SufficiencyResult: ``(B,)`` tensors ``sufficient``, ``confidence``, ``decided``,
        ``original_confidence`` and ``target``.

    Example::

        >>> # keep only 430-450 Hz of a 1 s clip at 8 kHz: is that enough?
        >>> keep = torch.zeros(1, 4001, dtype=torch.bool); keep[0, 430:451] = True
        >>> sufficiency(model, clip, keep).sufficient
        tensor([True])
    """
    run = MetricRun(
        forward_func, inputs, baselines, target, additional_forward_args, feature_mask,
        max_examples_per_batch, domain, per_channel, decision, output=output,
    )
    kept = _set_verdicts(run, feature_set, keep_set=True)
    return SufficiencyResult(kept.passes, kept.confidence, kept.decided, run.original.confidence, run.targets)


def necessity(
    forward_func: Callable,
    inputs: TensorOrTuple,
    feature_set: TensorOrTuple,
    baselines: Any = None,
    target: TargetLike = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    max_examples_per_batch: Optional[int] = None,
    *,
    domain: Optional[SpectralDomain] = None,
    per_channel: bool = False,
    decision: DecisionLike = None,
    output: Any = None,
) -> NecessityResult:
    r"""Does removing ``feature_set`` change the model's decision?

    Each example's mutant sets the features of the set to the baseline's spectrum and keeps every
    other feature. The set is necessary when the unmasked input keeps the target decision and the
    mutant does not. No gradients are used.

    Args:
        forward_func (Callable): The model: maps waveforms (plus ``additional_forward_args``) to
                    scores ``(N, K)``, ``(N,)`` or ``(N, ...)``.
        inputs (Tensor or tuple of Tensor): Waveforms ``(B, T)`` or ``(B, C, T)``, batch first.
        feature_set (Tensor or tuple of Tensor): The set, bool (or 0/1) shaped like the
                    attributions, ``(B, *feature_grid)`` (or ``(*feature_grid)``). With a
                    ``feature_mask``, a feature belongs to the set when any of its bins does.
        baselines (scalar, Tensor or tuple, optional): What removed features become, as in
                    :meth:`FreqReX.attribute`. Default: None (zeros: removal)
        target (int, tuple, Tensor or list, optional): The decision to test per example, as in
                    Captum. None is the model's own decision on the unmasked input. Default: None
        additional_forward_args (Any, optional): Passed to the model after the waveforms; tensors
                    whose first dimension is ``B`` are indexed per mutant. Default: None
        feature_mask (Tensor or tuple of Tensor, optional): Integer ids grouping bins into features.
                    Default: one feature per bin
        max_examples_per_batch (int, optional): Most mutants per model call. Default: None (a
                    memory-bounded size, at most 128)
        domain (SpectralDomain, optional): The feature transform. Default: rfft
        per_channel (bool, optional): Per-channel features for ``(B, C, T)`` inputs. Default: False
        decision (str, Decision or Callable, optional): When the decision is kept. Default: None
        output (str, int or Callable, optional): Where the scores are in what the model returns,
                    as for :class:`FreqReX` (``"logits"``, a tuple index, or a function). Default:
                    None (a tensor; ``.logits``, a ``"logits"`` key or a tuple's first element)

    Returns:
        NecessityResult: ``(B,)`` tensors ``necessary``, ``confidence``, ``decided`` (the class a
        removal flips to), ``original_confidence`` and ``target``.
    """
    run = MetricRun(
        forward_func, inputs, baselines, target, additional_forward_args, feature_mask,
        max_examples_per_batch, domain, per_channel, decision, output=output,
    )
    removed = _set_verdicts(run, feature_set, keep_set=False)
    necessary = run.original.passes & removed.changes
    return NecessityResult(necessary, removed.confidence, removed.decided, run.original.confidence, run.targets)
