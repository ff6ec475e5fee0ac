"""Insertion and deletion curves over a ranking, their AUC, and the minimal sufficient prefix."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.certify.prefix import probe_sizes
from captum_freqrex._core.model.targets import TargetLike
from captum_freqrex._utils.validation import TensorOrTuple
from captum_freqrex._core.certify.ranking import DEFAULT_RTOL
from captum_freqrex.metrics._common import MetricRun


#: Default ``max_scan_features`` of :func:`minimal_sufficient_prefix`: with at most this many
#: features every prefix size is evaluated (batched), above it the sizes are searched.
MAX_SCAN_FEATURES = 64


class CurveResult(NamedTuple):
    r"""An insertion or deletion curve per example and its area.

    Attributes:
        fractions (Tensor): ``(S,)`` float64 x-axis, the fraction of features inserted (or
                    deleted), ``k / n_features``, from 0 to 1.
        k (Tensor): ``(S,)`` long, the numbers of features inserted (or deleted).
        confidence (Tensor): ``(B, S)`` float64 y-axis, confidence in the target, in [0, 1].
        passes (Tensor): ``(B, S)`` bool, whether each point keeps the target decision.
        auc (Tensor): ``(B,)`` float64 area under the curve (trapezoid rule), in [0, 1]. Higher is
                    better for insertion, lower for deletion.
        target (Tensor): ``(B,)`` long, the (flattened) target index of each example.
    """

    fractions: Tensor
    k: Tensor
    confidence: Tensor
    passes: Tensor
    auc: Tensor
    target: Tensor

    def to_tensor(self) -> Tensor:
        r"""The per-example value, a tensor as :mod:`captum.metrics` returns: ``auc``
        (float64, the area under the curve).

        Returns:
            Tensor: ``(B,)``, the same tensor as ``.auc`` (not a copy).
        """
        return self.auc


class PrefixResult(NamedTuple):
    r"""Per-example results of :func:`minimal_sufficient_prefix`, each a ``(B,)`` tensor.

    Attributes:
        size (Tensor): long, the smallest ``k`` among the sizes evaluated whose top-``k`` features
                    kept alone keep the target decision (the top ``k - 1`` do not); -1 where no
                    evaluated prefix does. It is the smallest of all sizes when ``exhaustive``, or
                    when sufficiency is monotone in ``k`` (a sufficient prefix stays sufficient
                    as features are added); otherwise a smaller sufficient prefix may lie between
                    the sizes evaluated.
        found (Tensor): bool, ``size >= 0``.
        fraction (Tensor): float64, ``size / n_features`` (NaN where not found).
        confidence (Tensor): float64, confidence in the target with the top-``size`` kept (NaN
                    where not found).
        monotone (Tensor): bool, sufficiency was monotone over the sizes evaluated: no evaluated
                    prefix that fails to keep the decision is larger than one that keeps it. Where
                    False, the ranking is not monotone (a larger prefix lost the decision), and
                    ``size`` is the first sufficient size evaluated, not a threshold above which
                    every prefix suffices. Where True without ``exhaustive``, monotonicity is
                    assumed between the sizes evaluated, not proven.
        exhaustive (Tensor): bool, every size ``0..n_features`` was evaluated (a scan, when there
                    are at most ``max_scan_features`` features): ``size`` and ``monotone`` are
                    then exact.
        queries (Tensor): long, model queries the search spent on each example (besides the one
                    on the unmasked input, which every metric makes).
        target (Tensor): long, the (flattened) target index of each example.
    """

    size: Tensor
    found: Tensor
    fraction: Tensor
    confidence: Tensor
    monotone: Tensor
    exhaustive: Tensor
    queries: Tensor
    target: Tensor

    def to_tensor(self) -> Tensor:
        r"""The per-example value, a tensor as :mod:`captum.metrics` returns: ``size``
        (long; -1 where no prefix suffices).

        Returns:
            Tensor: ``(B,)``, the same tensor as ``.size`` (not a copy).
        """
        return self.size


def _curve_sizes(n_features: int, n_steps: int) -> List[int]:
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    grid = torch.linspace(0, n_features, min(n_steps, n_features) + 1, dtype=torch.float64)
    return sorted(set(grid.round().long().tolist()))


def _curve(
    insertion: bool,
    forward_func: Callable,
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    baselines: Any,
    target: TargetLike,
    additional_forward_args: Any,
    feature_mask: Any,
    max_examples_per_batch: Optional[int],
    n_steps: int,
    domain: Optional[SpectralDomain],
    per_channel: bool,
    decision: DecisionLike,
    rank_rtol: float,
    output: Any,
) -> CurveResult:
    run = MetricRun(
        forward_func, inputs, baselines, target, additional_forward_args, feature_mask,
        max_examples_per_batch, domain, per_channel, decision, output=output,
    )
    positions = run.positions(attributions, rank_rtol)
    n = run.space.n_features
    sizes = _curve_sizes(n, n_steps)
    device = run.space.device
    examples = torch.arange(run.batch_size, device=device).repeat_interleave(len(sizes))
    row_sizes = torch.tensor(sizes, device=device).repeat(run.batch_size)

    top, rest = (1.0, 0.0) if insertion else (0.0, 1.0)
    verdicts = run.evaluate_prefixes(positions, examples, row_sizes, top, rest).view(run.batch_size, len(sizes))
    fractions = torch.tensor(sizes, dtype=torch.float64) / n
    auc = torch.trapezoid(verdicts.confidence, fractions.to(device), dim=1)
    return CurveResult(
        fractions, torch.tensor(sizes, dtype=torch.long), verdicts.confidence, verdicts.passes, auc, run.targets
    )


_CURVE_ARGS = """
    Args:
        forward_func (Callable): The model: maps waveforms (plus ``additional_forward_args``) to
                    scores ``(N, K)``, ``(N,)`` or ``(N, ...)``.
        inputs (Tensor or tuple of Tensor): Waveforms ``(B, T)`` or ``(B, C, T)``, batch first.
        attributions (Tensor or tuple of Tensor): Any method's attributions over the frequency
                    feature grid, ``(B, *feature_grid)``. Features are ranked by descending mean
                    attribution over their bins; ties go to the louder feature
                    (more spectral energy), then to the lower index.
        baselines (scalar, Tensor or tuple, optional): What removed features become, as in
                    :meth:`FreqReX.attribute`. Default: None (zeros)
        target (int, tuple, Tensor or list, optional): The decision per example, as in Captum. None
                    is the model's own decision on the unmasked input. Default: None
        additional_forward_args (Any, optional): Passed to the model after the waveforms; tensors
                    whose first dimension is ``B`` are indexed per mutant. Default: None
        feature_mask (Tensor or tuple of Tensor, optional): Rank features (groups of bins) rather
                    than single bins. Default: one feature per bin
        max_examples_per_batch (int, optional): Most mutants per model call. Default: None (a
                    memory-bounded size, at most 128)
        n_steps (int, optional): Number of intervals on the x-axis: ``k`` runs over
                    ``round(linspace(0, n_features, n_steps + 1))`` (every ``k`` when
                    ``n_steps >= n_features``). Default: 32
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
"""


def insertion_curve(
    forward_func: Callable,
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    baselines: Any = None,
    target: TargetLike = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    max_examples_per_batch: Optional[int] = None,
    *,
    n_steps: int = 32,
    domain: Optional[SpectralDomain] = None,
    per_channel: bool = False,
    decision: DecisionLike = None,
    rank_rtol: float = DEFAULT_RTOL,
    output: Any = None,
) -> CurveResult:
    return _curve(
        True, forward_func, inputs, attributions, baselines, target, additional_forward_args,
        feature_mask, max_examples_per_batch, n_steps, domain, per_channel, decision, rank_rtol, output,
    )


def deletion_curve(
    forward_func: Callable,
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    baselines: Any = None,
    target: TargetLike = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    max_examples_per_batch: Optional[int] = None,
    *,
    n_steps: int = 32,
    domain: Optional[SpectralDomain] = None,
    per_channel: bool = False,
    decision: DecisionLike = None,
    rank_rtol: float = DEFAULT_RTOL,
    output: Any = None,
) -> CurveResult:
    return _curve(
        False, forward_func, inputs, attributions, baselines, target, additional_forward_args,
        feature_mask, max_examples_per_batch, n_steps, domain, per_channel, decision, rank_rtol, output,
    )


insertion_curve.__doc__ = (
    r"""Confidence in the target as the top-ranked features are inserted into the baseline.

    Point ``k`` keeps the top-``k`` features of the ranking and sets the rest to the baseline (for
    the default zero baseline: only those frequencies sound). A good ranking rises fast: higher
    AUC is better. The x-axis is normalised to [0, 1] (fraction of features).
"""
    + _CURVE_ARGS
    + r"""
    Returns:
        CurveResult: ``fractions`` ``(S,)``, ``k`` ``(S,)``, ``confidence`` ``(B, S)``, ``passes``
        ``(B, S)``, ``auc`` ``(B,)`` in [0, 1] and ``target`` ``(B,)``.
"""
)

deletion_curve.__doc__ = (
    r"""Confidence in the target as the top-ranked features are deleted from the input.

    Point ``k`` sets the top-``k`` features of the ranking to the baseline (removes them, for the
    default zero baseline) and keeps the rest. A good ranking falls fast: lower AUC is better. The
    x-axis is normalised to [0, 1] (fraction of features).
"""
    + _CURVE_ARGS
    + r"""
    Returns:
        CurveResult: ``fractions`` ``(S,)``, ``k`` ``(S,)``, ``confidence`` ``(B, S)``, ``passes``
        ``(B, S)``, ``auc`` ``(B,)`` in [0, 1] and ``target`` ``(B,)``.
"""
)


def _probe_sizes(lo: int, hi: int, count: int) -> List[int]:
    """Sizes strictly inside the bracket ``(lo, hi)``: the extraction's grid
    (:func:`~captum_freqrex._core.certify.prefix.probe_sizes`, geometric when wide, even when narrow).
    While nothing is known below, 0 and 1 come first (the baseline alone, and the single top
    feature)."""
    sizes = []
    if lo < 0:
        sizes.append(0)
        lo = 0
    if lo == 0 and hi > 1:
        sizes.append(1)
    return sorted(set(sizes + probe_sizes(lo, hi, count)))


def minimal_sufficient_prefix(
    forward_func: Callable,
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    baselines: Any = None,
    target: TargetLike = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    max_examples_per_batch: Optional[int] = None,
    *,
    grid_size: int = 8,
    max_scan_features: int = MAX_SCAN_FEATURES,
    domain: Optional[SpectralDomain] = None,
    per_channel: bool = False,
    decision: DecisionLike = None,
    rank_rtol: float = DEFAULT_RTOL,
    output: Any = None,
) -> PrefixResult:
    r"""The smallest top-``k`` of a ranking that, kept alone, keeps the decision.

    Sufficiency need not be monotone along a ranking: for a model that decides on an odd number of
    tones, the top-1 can keep the decision, the top-2 lose it and the top-3 keep it again. The
    result is therefore the **first** sufficient size among the sizes evaluated, and it says
    whether sufficiency was monotone over them (``monotone``) and whether every size was
    evaluated (``exhaustive``).

    * With at most ``max_scan_features`` features, every size ``0..n_features`` is evaluated, all
      of them in batched model calls: ``size`` is exactly the smallest sufficient prefix.
    * With more (e.g. the 240,001 bins of a 30 s clip at 16 kHz), a batched exponential +
      bisection search over ``k``, not a linear scan: every example keeps a bracket ``(lo, hi]``
      with ``hi`` the smallest size found to keep the decision (``n_features`` is the unmasked
      input) and ``lo`` the largest size below it found not to. The first round probes ``k = 0``,
      ``k = 1`` and a geometric grid; later rounds probe ``grid_size`` sizes inside each open
      bracket (geometric while it is wide, even once it is narrow). All probes of a round, over
      all examples, go to the model in batches. The search ends when ``hi = lo + 1``: ``hi`` is
      the smallest sufficient size evaluated, and the top ``hi - 1`` fail. It is the smallest of
      all sizes when sufficiency is monotone in ``k``; between the sizes evaluated below it, a
      non-monotone ranking may hide a smaller one (``monotone`` is False when the probes saw the
      ranking lose the decision above a sufficient size). About
      ``grid_size * log(n_features) / log(grid_size + 1)`` queries per example.

    Args:
        forward_func (Callable): The model: maps waveforms (plus ``additional_forward_args``) to
                    scores ``(N, K)``, ``(N,)`` or ``(N, ...)``.
        inputs (Tensor or tuple of Tensor): Waveforms ``(B, T)`` or ``(B, C, T)``, batch first.
        attributions (Tensor or tuple of Tensor): Any method's attributions over the frequency
                    feature grid, ``(B, *feature_grid)``. Features are ranked by descending mean
                    attribution over their bins; ties go to the louder feature
                    (more spectral energy), then to the lower index.
        baselines (scalar, Tensor or tuple, optional): What removed features become. Default: None
        target (int, tuple, Tensor or list, optional): The decision per example, as in Captum. None
                    is the model's own decision on the unmasked input. Default: None
        additional_forward_args (Any, optional): Passed to the model after the waveforms.
                    Default: None
        feature_mask (Tensor or tuple of Tensor, optional): Rank features (groups of bins) rather
                    than single bins; sizes then count features. Default: one feature per bin
        max_examples_per_batch (int, optional): Most mutants per model call. Default: None (a
                    memory-bounded size, at most 128)
        grid_size (int, optional): Sizes probed per example per round of the search. Default: 8
        max_scan_features (int, optional): Evaluate every size (``n_features + 1`` queries per
                    example, batched) when there are at most this many features; 0 always
                    searches. Default: 64
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
        PrefixResult: ``(B,)`` tensors ``size`` (-1 where no prefix keeps the decision, e.g. a
        ``target`` the model does not decide even unmasked), ``found``, ``fraction``,
        ``confidence``, ``monotone``, ``exhaustive``, ``queries`` and ``target``.

    Example::

        >>> result = minimal_sufficient_prefix(model, clips, FreqReX(model).attribute(clips))
        >>> result.size[result.found]        # top-k sizes that keep the decision alone
        >>> result.monotone.all()            # False: some ranking lost the decision as k grew
    """
    for name, value, least in (("grid_size", grid_size, 1), ("max_scan_features", max_scan_features, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    run = MetricRun(
        forward_func, inputs, baselines, target, additional_forward_args, feature_mask,
        max_examples_per_batch, domain, per_channel, decision, output=output,
    )
    positions = run.positions(attributions, rank_rtol)
    n = run.space.n_features
    batch = run.batch_size
    device = run.space.device
    original_passes = run.original.passes.tolist()
    original_confidence = run.original.confidence.tolist()
    # Per example, the verdicts known so far {k: (passes, confidence)}. The unmasked input is the
    # top-n when it keeps the decision; when it does not (another target), k = n is probed like
    # any other size, so that a smaller passing prefix is still looked for.
    known: List[Dict[int, Tuple[bool, float]]] = [
        {n: (True, original_confidence[b])} if original_passes[b] else {} for b in range(batch)
    ]
    queries = [0] * batch

    def probe(pairs: List[Tuple[int, int]]) -> None:
        """Evaluate the (example, size) pairs, in batched model calls, into ``known``."""
        examples = torch.tensor([b for b, _ in pairs], device=device)
        sizes = torch.tensor([k for _, k in pairs], device=device)
        verdicts = run.evaluate_prefixes(positions, examples, sizes, top=1.0, rest=0.0)
        for (b, k), passes, confidence in zip(pairs, verdicts.passes.tolist(), verdicts.confidence.tolist()):
            known[b][k] = (passes, confidence)
            queries[b] += 1

    if n <= max_scan_features:
        probe([(b, k) for b in range(batch) for k in range(n + 1) if k not in known[b]])
    else:
        brackets = [(-1, n + 1)] * batch  # (lo, hi): top-lo fails, top-hi passes; n + 1 = none known
        while True:
            for b, (lo, _) in enumerate(brackets):
                hi = min([k for k, (p, _) in known[b].items() if p] + [n + 1])
                lo = max([k for k, (p, _) in known[b].items() if not p and k < hi] + [lo])
                brackets[b] = (lo, hi)
            pairs = [
                (b, k) for b, (lo, hi) in enumerate(brackets) if hi - lo > 1 for k in _probe_sizes(lo, hi, grid_size)
            ]
            if not pairs:
                break
            probe(pairs)

    first = [min([k for k, (p, _) in verdicts.items() if p] + [n + 1]) for verdicts in known]
    last_failing = [max([k for k, (p, _) in verdicts.items() if not p] + [-1]) for verdicts in known]
    size = torch.tensor([k if k <= n else -1 for k in first], dtype=torch.long, device=device)
    found = size >= 0
    confidence = torch.tensor(
        [known[b][k][1] if k <= n else float("nan") for b, k in enumerate(first)], dtype=torch.float64, device=device
    )
    monotone = torch.tensor([f < k or k > n for f, k in zip(last_failing, first)], device=device)
    exhaustive = torch.tensor([len(verdicts) == n + 1 for verdicts in known], device=device)
    fraction = torch.where(found, size.double() / n, torch.nan)
    return PrefixResult(
        size, found, fraction, confidence, monotone, exhaustive,
        torch.tensor(queries, dtype=torch.long, device=device), run.targets,
    )
