"""The default search: chooses per example, by what the model answers, how responsibility is searched.

One call of :class:`FreqReX` with no ``search=`` meets very different cases: a tone detector (one
bin decides), a model that needs energy spread across the spectrum (no band separates its causes),
a pitch model that normalises its input (any near-empty bin at the pitch would do, but a listener
wants the harmonics), and removals in ``mode="necessary"``. :class:`AutoSearch` picks per example:

* ``mode="necessary"``: :class:`~captum_freqrex._core.search.band_screening.BandScreening`, the
  hierarchical screening of removals, with the spectral peaks screened alone alongside (it finds a
  single frequency whose removal flips the decision on every held-out percussion clip that has one,
  where the refinement found 38% of them, ``benchmarks/single_bin_limit.py``);
* ``mode="sufficient"``: first one query of the empty set (the baseline alone): when it keeps the
  decision, no feature is needed and nothing is searched (``stopped_by="empty set passes"``).
  Otherwise the partition refinement in frequency order, preferring the loudest of
  equally small passing sets (:class:`~captum_freqrex._core.search.partition.PartitionRefinement`,
  ``prefer="energy"``), which stops once its answer is settled. When the first search's smallest
  passing set holds more than :data:`SCATTERED_SHARE` of the features (and more than
  :data:`SCATTERED_MIN`), bands may not separate the causes: the rest of the budget goes to
  :class:`~captum_freqrex._core.search.adaptive.AdaptiveRefinement`, whose one-cut probe of every
  order (frequency, loudness tiers, interleaved; ties to frequency) picks the order to refine along,
  and the result with the smaller passing set is kept. On the zoo's strings clip (a CNN that needs
  a little energy across the spectrum) the probe picks loudness tiers; on a snare whose first
  search merely ended large, it stays with frequency order.
* Then the **loud-peak check** (:func:`loud_peak_check`): when the smallest passing set has at
  most four features, one batch asks whether the clip's loudest spectral peaks do as well; the loudest
  passing candidate, no larger than the search's set, leads the ranking. A model that normalises
  its input accepts a near-empty bin beside a partial as readily as the partial; a listener wants
  the partial.

The result's ``details`` say which way was taken (``"strategy"``) and, after an escalation, both
results' smallest passing sets.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

import torch
from torch import Tensor

from captum_freqrex._core.search.adaptive import AdaptiveRefinement
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.base import SearchContext, SearchResult
from captum_freqrex._core.search.partition import PartitionRefinement

#: A smallest passing set above this share of the features (and :data:`SCATTERED_MIN` features)
#: means the bands did not separate the causes: other feature orders are tried.
SCATTERED_SHARE = 0.01

#: Sets of at most this many features never count as scattered (1% of a short clip is a few bins).
SCATTERED_MIN = 16

#: How many of the loudest spectral peaks the loud-peak check tries (see :func:`loud_peak_check`).
LOUD_PEAKS = 12

#: The loud-peak check runs when the search's smallest passing set has at most this many features.
LOUD_CHECK_MAX = 4

#: Peaks closer than this share of the features are one peak: a partial spreads over neighbouring
#: bins (1/800 of the spectrum is 10 Hz at 16 kHz, whatever the clip's length).
PEAK_SPACING = 1 / 800


def loudest_peaks(energy: Tensor, count: int, spacing: float = PEAK_SPACING) -> List[int]:
    r"""The ``count`` loudest features further apart than ``spacing`` of the features, loudest first.

    Args:
        energy (Tensor): ``(n_features,)`` spectral energy of each feature.
        count (int): Most peaks returned.
        spacing (float, optional): A feature within this share of the features (at least 2 ids) of
                    a louder chosen one is part of its peak. Default: :data:`PEAK_SPACING`

    Returns:
        list of int: Feature ids, loudest first (fewer when the spectrum has fewer peaks with energy).
    """
    order = torch.sort(energy.double().cpu(), descending=True, stable=True)
    width = max(2, int(spacing * energy.numel()))
    peaks: List[int] = []
    for feature, value in zip(order.indices.tolist(), order.values.tolist()):
        if value <= 0 or len(peaks) == count:
            break
        if all(abs(feature - peak) > width for peak in peaks):
            peaks.append(feature)
    return peaks


def loud_peak_check(context: SearchContext, result: SearchResult) -> SearchResult:
    r"""Where the search's smallest set is tiny, ask whether the loudest peaks do as well.

    A search finds *a* smallest passing set; with a model that normalises its input, a near-empty
    bin next to a partial can pass as well as the partial itself. When the smallest set the search
    found has ``k <=`` :data:`LOUD_CHECK_MAX` features, one batch asks the model about each of the
    :data:`LOUD_PEAKS` loudest spectral peaks alone, for ``k >= 2`` the loudest peak with each of
    the others, and for ``k >= 3`` the 3 (up to ``k``) loudest together: at most 25 queries. The
    smallest passing candidate (the loudest among equals) is no larger than
    ``k`` and louder than the search's: its features get the responsibility of the most
    responsible feature (then all are scaled to sum to one), so the ranking's energy tie-break
    (:func:`~captum_freqrex._core.certify.ranking.rank_features`) puts them first, and it comes
    first among the sets the search saw pass.

    Args:
        context (SearchContext): The example's context (its energy and budget).
        result (SearchResult): What the search returned.

    Returns:
        SearchResult: ``result`` itself when nothing was checked or nothing passed, otherwise the
        result with the candidate credited; ``details["loud_peaks"]`` says which.
    """
    size, seen = _smallest(result), result.sets
    if seen is None or size is None or not 1 <= size <= LOUD_CHECK_MAX:
        return result
    peaks = loudest_peaks(context.energy, LOUD_PEAKS)
    candidates = [[p] for p in peaks] + ([[peaks[0], p] for p in peaks[1:]] if size >= 2 else [])
    candidates += [peaks[:j] for j in range(3, min(size, len(peaks)) + 1)]
    remaining = context.remaining
    if not candidates or (remaining is not None and remaining < len(candidates)):
        return result
    masks = torch.zeros(len(candidates), context.n_features, device=context.device)
    for row, ids in enumerate(candidates):
        masks[row, ids] = 1.0
    passes = context.evaluate_sets(masks).passes.tolist()
    passing = [ids for ids, ok in zip(candidates, passes) if ok]
    details = {**result.details, "loud_peaks": None}
    if not passing:
        return dataclasses.replace(result, queries=result.queries + len(candidates), details=details)
    chosen = min(passing, key=len)  # candidates are in loudness order: the loudest among equals
    # As small as any set the searches found, and louder: its features tie with the most
    # responsible one, so the ranking's energy tie-break puts them first; the sum stays one.
    values = result.responsibility.double().cpu().clone()
    values[chosen] = float(values.max()) if float(values.max()) > 0 else 1.0
    values /= values.sum()
    found = masks[candidates.index(chosen)].bool().unsqueeze(0)
    sets = torch.cat([found.to(seen.device), seen])
    details["loud_peaks"] = chosen
    return SearchResult(values, result.queries + len(candidates), result.stopped_by, details, sets)


def _smallest(result: SearchResult) -> Optional[int]:
    """Features in the smallest passing set a search returned (None: it kept none)."""
    return None if result.sets is None or not result.sets.shape[0] else int(result.sets[0].sum())


class AutoSearch:
    r"""The default search of :class:`FreqReX`: the strategy is chosen per example (module docstring).

    Uses ``context.options`` as the strategies it runs do; ``max_queries`` caps all of them together.
    """

    def __repr__(self) -> str:
        return "AutoSearch()"

    def run(self, context: SearchContext) -> SearchResult:
        r"""Band screening for removals; the refinement, then other orders if it stays scattered."""
        if context.mode == "necessary":
            result = BandScreening().run(context)
            return dataclasses.replace(result, details={**result.details, "strategy": "band_screening"})
        start = context.queries
        if bool(context.evaluate_sets(torch.zeros(1, context.n_features, device=context.device)).passes[0]):
            # The baseline alone keeps the decision: the empty set is sufficient and no feature is
            # needed (the explanation's warning says so); a search would only spend the budget.
            values = torch.zeros(context.n_features, dtype=torch.float64)
            return SearchResult(values, context.queries - start, "empty set passes", {"strategy": "empty set passes"})
        step = 2**context.options.n_pieces - 1
        if context.remaining is not None and context.remaining < step:
            # max_queries at its floor (one refinement step): the empty-set query left too little.
            values = torch.zeros(context.n_features, dtype=torch.float64)
            return SearchResult(values, context.queries - start, "max_queries", {"strategy": "frequency"})
        limit = max(SCATTERED_MIN, int(SCATTERED_SHARE * context.n_features))
        first = context.run_within_budget(PartitionRefinement(prefer="energy", scattered_above=limit))
        remaining = context.remaining
        if first.stopped_by != "scattered" or (remaining is not None and remaining < 3 * step):
            checked = loud_peak_check(context, first)
            details = {**checked.details, "strategy": "frequency"}
            return dataclasses.replace(checked, queries=context.queries - start, details=details)
        # One search can end scattered by chance: the one-cut probe of every order decides whether
        # another order narrows the set more; ties go to frequency order, refined afresh.
        second = context.run_within_budget(AdaptiveRefinement(prefer="energy"))
        size, other = _smallest(first), _smallest(second)
        better = second if other is not None and (size is None or other < size) else first
        strategy = f"probed, refined along {second.details['order']}"
        if better is first:
            strategy += " (no smaller set than the first search's)"
        checked = loud_peak_check(context, better)
        details = {**checked.details, "strategy": strategy, "first_set": size, "second_set": other,
                   "first_queries": first.queries}
        return dataclasses.replace(checked, queries=context.queries - start, details=details)

