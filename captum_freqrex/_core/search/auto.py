"""The default search: chooses per example, by what the model answers, how responsibility is searched.

One call of :class:`FreqReX` with no ``search=`` meets very different cases: a tone detector (one
bin decides), a model that needs energy spread across the spectrum (no band separates its causes),
a pitch model that normalises its input (any near-empty bin at the pitch would do, but a listener
wants the harmonics), and removals in ``mode="necessary"``. :class:`AutoSearch` picks per example:

* ``mode="necessary"``: :class:`~captum_freqrex._core.search.band_screening.BandScreening`, the
  hierarchical screening of removals, with the spectral peaks screened alone alongside (it finds a
  single frequency whose removal flips the decision on every held-out percussion clip that has one,
  where the refinement found 38% of them, ``benchmarks/single_bin_limit.py``);
* ``mode="sufficient"``: first the empty set (the baseline alone; read from
  ``context.empty_passes`` where :class:`FreqReX`'s anchors already asked it, one query
  otherwise): when it keeps the decision, no feature is needed and nothing is searched
  (``stopped_by="empty set passes"``).
  Then the **loudest peaks first** (:func:`loud_peaks_first`): the clip's spectral peaks within
  20 dB of its loudest feature alone, loudest first, then the 2, 3 and 4 loudest together, a few
  per model call until one passes. A peak that passes alone is a smallest passing set (the empty
  set failed); a few that pass together settle the run as a search's set of at most four would.
  Either is the answer and nothing is refined (``stopped_by="minimal"`` or ``"small"``,
  ``"strategy": "loud peak"`` or ``"loud peaks"``); of several peaks, as in the refinement, only
  those whose removal from the set loses the decision are credited (one more model call), so a
  peak the model ignores still gets exactly zero.
  Then the **loud regions first** (:func:`loud_regions_first`), bands first: the bands around
  the clip's 1, 2, 4, ..., 64 loudest peaks in one batch, and the refinement inside the smallest
  that passes; its
  smallest passing set at the clip's level is the answer (``"strategy": "loud band"``), and
  nothing over the whole spectrum is refined. Where no band passes, the **loud tiers** are asked
  the same way: the clip's 8, 16, 32, ... loudest bins, up to an eighth of the features, in one
  more batch (``"strategy": "loud tier"``): a model may keep its decision on a clip's loudest
  bins and lose it on the bands around them, which hold quieter bins too. Where no tier passes,
  the **loud spreads** are (the loudest bin of each of 8, 16, ..., 256 equal stretches of the
  spectrum, one more batch; ``"strategy": "loud spread"``): a model that needs a little energy
  across the spectrum refuses the loudest bins, which crowd where the clip is loudest, and takes
  those. Such a cause is scattered, so the **tail** (below) orders the features the refinement
  inside the spread left at zero.
  Otherwise the partition refinement in frequency order, preferring the loudest of
  equally small passing sets (:class:`~captum_freqrex._core.search.partition.PartitionRefinement`,
  ``prefer="energy"``), which stops once its answer is settled. When the first search's smallest
  passing set holds more than :data:`SCATTERED_SHARE` of the features (and more than
  :data:`SCATTERED_MIN`), bands may not separate the causes; the first search stops as soon as
  a step narrows nothing on a set that large (``scattered_above``), so the budget is not spent
  trimming slivers off it. The rest of the budget goes to
  :class:`~captum_freqrex._core.search.adaptive.AdaptiveRefinement`, whose one-cut probe of every
  order (frequency, loudness tiers, interleaved; ties to frequency) picks the order to refine along,
  and the result with the smaller passing set is kept. On the zoo's strings clip (a CNN that needs
  a little energy across the spectrum) the probe picks loudness tiers; on a snare whose first
  search merely ended large, it stays with frequency order.
* Then the **loud-peak check** (:func:`loud_peak_check`): when the smallest passing set has at
  most four features, the model is asked whether the clip's loudest spectral peaks do as well
  (a few at a time, until one does; the peaks already asked alone are not asked again); the loudest
  passing candidate, no larger than the search's set, leads the ranking. A model that normalises
  its input accepts a near-empty bin beside a partial as readily as the partial; a listener wants
  the partial.
* Then the **loud-band check** (:func:`loud_band_check`): when the smallest passing set is
  still more than 20 dB below the clip's loudest feature (the level at which a set is flagged),
  the bands around the 1, 2, 4, ..., 64 loudest peaks are asked about, then the loud tiers, then
  the **loud spreads**, and the refinement runs inside the smallest passing one: a set found
  there at the clip's level leads, even when larger. No kind of region whose every region was
  asked first and failed is asked again (it would fail again; where none passed, nothing is
  asked); where one passed but the refinement inside found only quiet sets, this is its second
  try.
* In the scattered case (an escalation, or a set found inside a loud spread), last, the **tail**
  (:func:`rank_tail`): one search along the interleaved order orders the features the searches
  left at zero by the nested passing sets it narrowed through, so the ranking's prefixes beyond
  the set keep the decision where the set alone is a few bins (insertion AUC on the strings clip
  0.47 without, 0.98 with).

The result's ``details`` say which way was taken (``"strategy"``) and, after an escalation, both
results' smallest passing sets.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.search.adaptive import AdaptiveRefinement
from captum_freqrex._core.search.band_screening import PEAK_SPACING, BandScreening
from captum_freqrex._core.search.base import SearchContext, SearchResult
from captum_freqrex._core.search.partition import PartitionRefinement
from captum_freqrex._core.search.restricted import restrict_context
from captum_freqrex._core.spectral.space import ids_to_mask, loudest_order
from captum_freqrex._explanation.informative import MIN_LEVEL_DB, level_floor
from captum_freqrex._utils.ordered import ask_until_one_holds

#: A smallest passing set above this share of the features (and :data:`SCATTERED_MIN` features)
#: means the bands did not separate the causes: other feature orders are tried.
SCATTERED_SHARE = 0.01

#: Sets of at most this many features never count as scattered (1% of a short clip is a few bins).
SCATTERED_MIN = 16

#: How many of the loudest spectral peaks the loud-peak check tries (see :func:`loud_peak_check`).
LOUD_PEAKS = 12

#: The loud-peak check runs when the search's smallest passing set has at most this many features.
LOUD_CHECK_MAX = 4

#: Candidates the loud-peak check asks per model call, in order, until one passes.
LOUD_PEAK_BATCH = 4

#: Most queries of the interleaved search that orders a scattered cause's tail (:func:`rank_tail`):
#: ten refinement steps, passing sets down to about 4**-10 of the spectrum.
TAIL_QUERIES = 150

#: The tail's responsibility is at most this share of the least credited feature's.
TAIL_SCALE = 1e-3

#: The loud-band check (:func:`loud_band_check`) tries the bands around up to this many peaks.
LOUD_BANDS = 64

#: Half-width of a loud band, as a share of the features (30 bins of a 30 s clip: 1 Hz).
BAND_SHARE = 1 / 8000

#: Where no loud band keeps the decision, the loud tiers are asked: the clip's
#: :data:`LOUD_TIER_MIN`, twice as many, ... loudest bins, up to this share of the features (at
#: most 12 queries at 30 s). A model may take a handful of loud bins for the clip and not the
#: bands around them: a held-out instruments clip whose 8 loudest bins keep the decision, every
#: band around its loud peaks (which holds quieter bins beside them) losing it.
LOUD_TIER_SHARE = 1 / 8

#: The smallest loud tier asked (see :data:`LOUD_TIER_SHARE`).
LOUD_TIER_MIN = 8

#: Where neither a loud band nor a loud tier keeps the decision, the loud spreads are asked: the
#: loudest feature of each of :data:`LOUD_SPREAD_MIN`, twice as many, ... up to this many equal
#: stretches of the spectrum (at most 6 queries). A model that needs a little energy across the
#: spectrum (the zoo's strings clip) refuses the loudest bins, which crowd where the clip is
#: loudest, and takes the loudest of each stretch.
LOUD_SPREAD_MAX = 256

#: The fewest stretches a loud spread is asked over (see :data:`LOUD_SPREAD_MAX`).
LOUD_SPREAD_MIN = 8

#: The loud regions of the spectrum, in the order :func:`loud_band_check` asks them: the bands
#: around the loudest peaks, the loud tiers, the loud spreads.
REGION_KINDS: Tuple[str, ...] = ("band", "tier", "spread")


#: Most queries of the refinement inside the loud bands (:func:`loud_band_check`).
LOUD_SEARCH_QUERIES = 150

#: Most queries of the refinement inside the loud bands when they are asked before any refinement
#: (:func:`loud_regions_first`): at 150 the 30 s piano's search there ended on the cap with a
#: 1,002-bin set that shrank to 21 bins at -14 dB; at 300, 612 bins that shrank to 3 at 0 dB.
LOUD_FIRST_QUERIES = 300


def loudest_peaks(
    energy: Tensor, count: int, spacing: float = PEAK_SPACING, loudest_first: Optional[Tensor] = None
) -> List[int]:
    r"""The ``count`` loudest features further apart than ``spacing`` of the features, loudest first.

    Args:
        energy (Tensor): ``(n_features,)`` spectral energy of each feature.
        count (int): Most peaks returned.
        spacing (float, optional): A feature within this share of the features (at least 2 ids) of
                    a louder chosen one is part of its peak. Default: :data:`PEAK_SPACING`
        loudest_first (Tensor, optional): The features by descending energy, ties by ascending
                    id, where the caller has them (:meth:`SearchContext.loudest_first`).
                    Default: None (sorted here)

    Returns:
        list of int: Feature ids, loudest first (fewer when the spectrum has fewer peaks with energy).
    """
    if loudest_first is None:
        loudest_first = loudest_order(energy)
    n = energy.numel()
    width = max(2, int(spacing * n))
    with_energy = loudest_first[: int((energy > 0).sum())]
    # Features within ``width`` of a chosen peak, marked as it is chosen: one lookup per feature
    # instead of a distance to every peak (30 s clips walk some 20,000 features to 64 peaks).
    taken = bytearray(n)
    peaks: List[int] = []
    for start in range(0, with_energy.numel(), 4096):
        for feature in with_energy[start : start + 4096].tolist():
            if len(peaks) == count:
                return peaks
            if not taken[feature]:
                peaks.append(feature)
                lo, hi = max(0, feature - width), min(n, feature + width + 1)
                taken[lo:hi] = b"\x01" * (hi - lo)
    return peaks


def loud_peaks_first(context: SearchContext, peaks: List[int]) -> Tuple[Optional[SearchResult], List[List[int]]]:
    r"""Before any refinement, ask whether the loudest spectral peaks keep the decision: alone, then
    the 2, 3 and 4 loudest together.

    The empty set (the baseline alone) already failed, so a single feature that passes is a
    smallest passing set: the stopping rule's ``"minimal"``, reached without the refinement's
    ~100 queries. (Before this check, on 13 of the 17 shipped zoo clips and harmonic notes of
    ``benchmarks/queries_to_answer.py`` that needed a search, the refinement spent 90-590 queries
    to end on a set that the loud-peak check then replaced by one loud peak alone.) A set of the
    2 to :data:`LOUD_CHECK_MAX` loudest peaks that passes settles the run as a search's set of at
    most :data:`~captum_freqrex._core.search.partition.SMALL_SET` features would (``"small"``): the
    shrink that ``explain`` runs next drops the peaks it does not need.

    The peaks are those of the :data:`LOUD_PEAKS` loudest within 20 dB of the loudest feature (the
    level below which a set is flagged), asked alone, loudest first, then together, in that order,
    :data:`LOUD_PEAK_BATCH` per model call until one passes. Skipped (nothing asked) when the
    stopping rule is off (``convergence_top_k=None``: every search runs) or when the budget could
    not also hold one refinement step after them.

    Args:
        context (SearchContext): The example's context (its energy and budget).
        peaks (list of int): :func:`loudest_peaks` of the example, loudest first.

    Returns:
        tuple: The result (``stopped_by="minimal"`` for one peak, ``"small"`` for several; None
        when none passed or nothing was asked) and the candidates asked that failed, which
        :func:`loud_peak_check` then need not ask again. Of several passing peaks, those whose
        removal from the set loses the decision share the responsibility equally (the
        refinement's credit: a peak the model ignores gets none; asked in one more model call),
        and the result's set leaves out the first peak the set does not need.
    """
    # Only peaks within -MIN_LEVEL_DB of the loudest feature: a quieter one would be flagged, and
    # the search with the loud-band check after it looks for a set at the clip's level instead.
    loud = _at_clip_level(context, peaks[:LOUD_PEAKS])
    candidates = [[p] for p in loud] + [loud[:k] for k in range(2, min(LOUD_CHECK_MAX, len(loud)) + 1)]
    step = 2**context.options.n_pieces - 1
    remaining = context.remaining
    if not candidates or context.options.convergence_top_k is None or (
        remaining is not None and remaining < len(candidates) + step
    ):
        return None, []
    start = context.queries
    _, passes = _ask_in_order(context, candidates)
    chosen = next((row for row, ok in enumerate(passes) if ok), None)
    if chosen is None:
        return None, candidates[: len(passes)]
    members = candidates[chosen]
    credited, smallest = _counterfactual_members(context, members)
    values = torch.zeros(context.n_features, dtype=torch.float64)
    values[credited] = 1.0 / len(credited)
    sets = torch.zeros(1, context.n_features, dtype=torch.bool, device=context.device)
    sets[0, smallest] = True
    details = {"strategy": "loud peak" if len(members) == 1 else "loud peaks", "loud_peaks": members}
    stopped_by = "minimal" if len(members) == 1 else "small"
    return SearchResult(values, context.queries - start, stopped_by, details, sets), []


def _at_clip_level(context: SearchContext, ids: List[int]) -> List[int]:
    # The features within -MIN_LEVEL_DB of the loudest (in their order): a set of quieter ones
    # would be flagged far below the clip's level. As a truth value: whether any is.
    floor = level_floor(float(context.energy.max()))
    return [p for p in ids if float(context.energy[p]) >= floor]


def _ask_in_order(context: SearchContext, candidates: List[List[int]]) -> Tuple[Tensor, List[bool]]:
    # The keep-masks of ``candidates`` (lists of feature ids) and whether each passes, asked in
    # order LOUD_PEAK_BATCH per model call until one does (the answers of those asked).
    masks = ids_to_mask(candidates, context.n_features, context.device)
    passes = ask_until_one_holds(
        range(len(candidates)), lambda rows: context.evaluate_sets(masks[rows[0] : rows[-1] + 1]).passes.tolist(),
        bool, LOUD_PEAK_BATCH,
    )
    return masks, passes


def _counterfactual_members(context: SearchContext, members: List[int]) -> Tuple[List[int], List[int]]:
    # The members of a passing set of the loudest peaks whose removal from it loses the decision
    # (the refinement's credit: a member the model ignores is never counterfactual and gets
    # nothing), and the smallest passing set seen: the set without the first member it does not
    # need. The last member is counterfactual without a query: without it the set is the
    # candidate before it, which failed.
    if len(members) == 1:
        return members, members
    leave_one_out = [[m for m in members if m != left_out] for left_out in members[:-1]]
    still_pass = context.evaluate_sets(ids_to_mask(leave_one_out, context.n_features, context.device)).passes.tolist()
    credited = [m for m, ok in zip(members[:-1], still_pass) if not ok] + members[-1:]
    spare = next((m for m, ok in zip(members[:-1], still_pass) if ok), None)
    return credited, [m for m in members if m != spare]


def loud_peak_check(
    context: SearchContext, result: SearchResult, failed: Sequence[List[int]] = (), peaks: Optional[List[int]] = None,
    at_clip_level: bool = False,
) -> SearchResult:
    r"""Where the search's smallest set is tiny, ask whether the loudest peaks do as well.

    A search finds *a* smallest passing set; with a model that normalises its input, a near-empty
    bin next to a partial can pass as well as the partial itself. When the smallest set the search
    found has ``k <=`` :data:`LOUD_CHECK_MAX` features, the model is asked about each of the
    :data:`LOUD_PEAKS` loudest spectral peaks alone, for ``k >= 2`` the loudest peak with each of
    the others, and for ``k >= 3`` the 3 (up to ``k``) loudest together: at most 25 queries, asked
    in that order :data:`LOUD_PEAK_BATCH` at a time until one passes (the loudest peak alone
    often does: 4 queries). The
    smallest passing candidate (the loudest among equals) is no larger than
    ``k`` and louder than the search's: its features get the responsibility of the most
    responsible feature (then all are scaled to sum to one), so the ranking's energy tie-break
    (:func:`~captum_freqrex._core.certify.ranking.rank_features`) puts them first, and it comes
    first among the sets the search saw pass.

    Args:
        context (SearchContext): The example's context (its energy and budget).
        result (SearchResult): What the search returned.
        failed (sequence of lists, optional): Candidates :func:`loud_peaks_first` already asked
                    and saw fail: not asked again. Default: ()
        peaks (list of int, optional): :func:`loudest_peaks` of the example, at least
                    :data:`LOUD_PEAKS` of them where it has that many (None: found here).
                    Default: None
        at_clip_level (bool, optional): Ask only candidates whose loudest peak is within 20 dB
                    of the loudest feature (for a set at the clip's level already, which a
                    quieter candidate must not replace). Default: False

    Returns:
        SearchResult: ``result`` itself when nothing was checked or nothing passed, otherwise the
        result with the candidate credited; ``details["loud_peaks"]`` says which.
    """
    size, seen = _smallest(result), result.sets
    if seen is None or size is None or not 1 <= size <= LOUD_CHECK_MAX:
        return result
    if peaks is None:
        peaks = loudest_peaks(context.energy, LOUD_PEAKS, loudest_first=context.loudest_first())
    peaks = peaks[:LOUD_PEAKS]
    candidates = [[p] for p in peaks] + ([[peaks[0], p] for p in peaks[1:]] if size >= 2 else [])
    candidates += [peaks[:j] for j in range(3, min(size, len(peaks)) + 1)]
    # Those asked before the search are known to fail.
    candidates = [ids for ids in candidates if ids not in failed]
    if at_clip_level:
        candidates = [ids for ids in candidates if _at_clip_level(context, ids)]
    remaining = context.remaining
    if not candidates or (remaining is not None and remaining < len(candidates)):
        return result
    # The candidates are in order of size, then loudness: the first that passes is the smallest,
    # the loudest among equals, and the ones after it need not be asked.
    masks, passes = _ask_in_order(context, candidates)
    asked, chosen = len(passes), next((row for row, ok in enumerate(passes) if ok), None)
    details = {**result.details, "loud_peaks": None}
    if chosen is None:
        return dataclasses.replace(result, queries=result.queries + asked, details=details)
    # As small as any set the searches found, and louder: it leads the ranking.
    values = _leading(result.responsibility, candidates[chosen])
    sets = torch.cat([masks[chosen].bool().unsqueeze(0).to(seen.device), seen])
    details["loud_peaks"] = candidates[chosen]
    return SearchResult(values, result.queries + asked, result.stopped_by, details, sets)


def _leading(responsibility: Tensor, members: Union[List[int], Tensor]) -> Tensor:
    # ``members`` (ids or a bool mask) raised to the most responsible feature's responsibility,
    # then all scaled to sum to one: they tie with it, so the ranking's energy tie-break
    # (rank_features) puts them first.
    values = responsibility.double().cpu().clone()
    values[members] = float(values.max()) if float(values.max()) > 0 else 1.0
    values /= values.sum()
    return values


def level_db(energy: Tensor, members: Tensor) -> float:
    r"""The loudest of ``members`` (a bool mask) relative to the loudest feature, in dB (-inf: silent)."""
    energy = energy.double().cpu()
    top, inside = float(energy.max()), float(energy[members.cpu()].max()) if bool(members.any()) else 0.0
    return 10.0 * math.log10(inside / top) if inside > 0 and top > 0 else -math.inf


def loud_band_check(
    context: SearchContext, result: SearchResult, peaks: Optional[List[int]] = None,
    kinds: Sequence[str] = REGION_KINDS,
) -> SearchResult:
    r"""Where the smallest set is far below the clip's level, search for one at the clip's energy.

    A model that normalises its input may take a few near-empty bins for the clip (the zoo's
    instruments CNN takes two bins at -24 dB for the piano). When the smallest passing set's
    loudest feature is more than ``-MIN_LEVEL_DB`` (20) dB below the clip's loudest, one batch asks
    the model about the bands around the clip's 1, 2, 4, ..., :data:`LOUD_BANDS` loudest peaks
    (each ``±`` :data:`BAND_SHARE` of the features wide): the loudest parts of the spectrum,
    grown geometrically (at most 7 queries), and where none passes, about the loud tiers (the
    clip's 8, 16, 32, ... loudest bins, up to :data:`LOUD_TIER_SHARE` of the features; at most 12
    more), and where none passes, about the loud spreads (the loudest bin of each of 8, 16, ...,
    :data:`LOUD_SPREAD_MAX` equal stretches of the spectrum; at most 6 more): a model that needs
    a little energy across the spectrum takes those and refuses the loudest bins, which crowd
    where the clip is loudest. When one passes, the partition refinement (``prefer="energy"``)
    runs inside the smallest passing one only (at most :data:`LOUD_SEARCH_QUERIES` queries): every
    set it sees is made of bins near the loud peaks, of the loudest bins or of the loud spread.
    Its smallest passing set within 20 dB of the clip's loudest feature leads: its features get
    the responsibility of the most responsible one (all scaled to sum to one) and it replaces the
    quieter smaller sets among the sets the shrink may start from. Otherwise the result stays as
    it was: no louder set was found, and the set is flagged.

    Args:
        context (SearchContext): The example's context (its energy and budget).
        result (SearchResult): What the searches and the loud-peak check returned.
        peaks (list of int, optional): :func:`loudest_peaks` of the example, at least
                    :data:`LOUD_BANDS` of them where it has that many (None: found here).
                    Default: None
        kinds (sequence of str, optional): The kinds of region asked, in order, of
                    :data:`REGION_KINDS`: those not asked before the search, or asked with a
                    region that passed; ``()`` where every kind was asked and failed: nothing is
                    asked and the set stays, quiet (``details["loud_band"]`` None).
                    Default: :data:`REGION_KINDS`

    Returns:
        SearchResult: ``result`` with the queries spent added; ``details["loud_band"]`` is the
        louder set's size (None: checked, none found), absent when nothing was checked;
        ``details["loud_tier"]`` or ``details["loud_spread"]`` the region's size where the louder
        set came from a loud tier or a loud spread.
    """
    seen = result.sets
    if seen is None or not seen.shape[0] or level_db(context.energy, seen[0]) >= MIN_LEVEL_DB:
        return result
    if not kinds:  # asked before the search, and none passed
        return dataclasses.replace(result, details={**result.details, "loud_band": None})
    searched = _loud_region_search(context, peaks, LOUD_SEARCH_QUERIES, kinds)
    if searched is None:
        return result
    spent, _, found = searched
    candidates = None if found is None else found.sets
    first = None if candidates is None else _first_at_clip_level(context, candidates)
    louder = None if candidates is None or first is None else candidates[first].cpu()
    details = {**result.details, "loud_band": None}
    for kind in ("tier", "spread"):
        if louder is not None and found is not None and f"loud_{kind}" in found.details:
            details[f"loud_{kind}"] = found.details[f"loud_{kind}"]
    if louder is None:
        return dataclasses.replace(result, queries=result.queries + spent, details=details)
    values = _leading(result.responsibility, louder)
    size = int(louder.sum())
    kept = seen[seen.sum(dim=1) >= size]  # the quieter smaller sets no longer start the shrink
    sets = torch.cat([louder.to(seen.device).unsqueeze(0), kept])
    details["loud_band"] = size
    return SearchResult(values, result.queries + spent, result.stopped_by, details, sets)


def _region_masks(context: SearchContext, peaks: List[int], kind: str) -> Tensor:
    # Bool masks (rows, n) of one kind of loud region, smallest first: the bands around the clip's
    # 1, 2, 4, ..., LOUD_BANDS loudest peaks; its LOUD_TIER_MIN, twice as many, ... loudest bins up
    # to LOUD_TIER_SHARE of the features; or its loud spreads (_loud_spreads).
    n = context.n_features
    if kind == "spread":
        return _loud_spreads(context.energy.double().cpu())
    if kind == "band":
        counts = [k for k in (2**j for j in range(LOUD_BANDS.bit_length())) if k <= len(peaks)]
        width = max(0, int(BAND_SHARE * n))
        bands = torch.zeros(len(counts), n, dtype=torch.bool)
        for row, k in enumerate(counts):
            for peak in peaks[:k]:
                bands[row, max(0, peak - width) : min(n, peak + width + 1)] = True
        return bands
    sizes = [k for k in (LOUD_TIER_MIN * 2**j for j in range(n.bit_length())) if k <= LOUD_TIER_SHARE * n]
    loudest = context.loudest_first()
    tiers = torch.zeros(len(sizes), n, dtype=torch.bool)
    for row, k in enumerate(sizes):
        tiers[row, loudest[:k]] = True
    return tiers


class _Regions(NamedTuple):
    # What asking the loud regions found: the queries spent, the smallest passing region of the
    # first kind with one (a bool mask over every feature; None: none passed), its kind, and the
    # kinds asked before it whose every region failed.
    spent: int
    region: Optional[Tensor]
    kind: Optional[str]
    failed: Tuple[str, ...]


def _loud_regions(context: SearchContext, peaks: List[int], kinds: Sequence[str]) -> Optional[_Regions]:
    # The loud parts of the spectrum the refinement may run inside, each asked kept alone, one
    # batch per kind of ``kinds`` (of REGION_KINDS), in order until one passes. None when the
    # budget does not allow the first kind's batch and one refinement step.
    step = 2**context.options.n_pieces - 1
    spent = 0
    failed: Tuple[str, ...] = ()
    for kind in kinds:
        masks = _region_masks(context, peaks, kind)
        remaining = context.remaining
        if not masks.shape[0] or (remaining is not None and remaining < masks.shape[0] + step):
            return None if kind == kinds[0] else _Regions(spent, None, None, failed)
        passes = context.evaluate_sets(masks.float().to(context.device)).passes.cpu()
        spent += masks.shape[0]
        if bool(passes.any()):
            return _Regions(spent, masks[int(passes.nonzero()[0])], kind, failed)
        failed += (kind,)
    return _Regions(spent, None, None, failed)


def _loud_spreads(energy: Tensor) -> Tensor:
    # Bool masks (rows, n) of the loudest feature with energy in each of LOUD_SPREAD_MIN, twice as
    # many, ... LOUD_SPREAD_MAX equal stretches of the features (only counts below a third of them).
    n = energy.numel()
    counts = [k for k in (LOUD_SPREAD_MIN * 2**j for j in range(LOUD_SPREAD_MAX.bit_length())) if k <= min(LOUD_SPREAD_MAX, n // 3)]
    spreads = torch.zeros(len(counts), n, dtype=torch.bool)
    for row, k in enumerate(counts):
        edges = torch.linspace(0, n, k + 1).round().long().tolist()
        for lo, hi in zip(edges[:-1], edges[1:]):
            if hi > lo and float(energy[lo:hi].max()) > 0:
                spreads[row, lo + int(energy[lo:hi].argmax())] = True
    return spreads


def _loud_region_search(
    context: SearchContext, peaks: Optional[List[int]], cap: int, kinds: Sequence[str],
) -> Optional[Tuple[int, Tuple[str, ...], Optional[SearchResult]]]:
    # The loud regions of ``kinds`` (_loud_regions: the bands around the clip's loudest peaks,
    # else its loud tiers, else its loud spreads), and the partition refinement (prefer="energy")
    # inside the smallest passing one, within ``cap`` queries. None when the budget does not allow
    # it; otherwise the queries spent, the regions' included, the kinds whose every region failed,
    # and the refinement's result over all the features (its
    # responsibility zero outside the region, its sets as masks over every feature,
    # ``details["loud_tier"]`` or ``details["loud_spread"]`` the region's size where it is a tier
    # or a spread; None when no region passed or it kept no set).
    n = context.n_features
    if peaks is None:
        peaks = loudest_peaks(context.energy, LOUD_BANDS, loudest_first=context.loudest_first())
    peaks = peaks[:LOUD_BANDS]
    asked = _loud_regions(context, peaks, kinds)
    if asked is None:
        return None
    spent, region, kind, failed = asked
    if region is None:
        return spent, failed, None
    remaining = context.remaining
    options = dataclasses.replace(context.options, max_queries=cap if remaining is None else min(remaining, cap))
    found = PartitionRefinement(prefer="energy").run(restrict_context(context, region, options))
    context.queries += found.queries
    spent += found.queries
    if found.sets is None or not found.sets.shape[0]:
        return spent, failed, None
    ids = region.nonzero().squeeze(1)
    values = torch.zeros(n, dtype=torch.float64)
    values[ids] = found.responsibility.double().cpu()
    sets = torch.zeros(found.sets.shape[0], n, dtype=torch.bool)
    sets[:, ids] = found.sets.cpu().bool()
    details = {**found.details, f"loud_{kind}": int(region.sum())} if kind != "band" else found.details
    return spent, failed, dataclasses.replace(found, responsibility=values, sets=sets, details=details)


def _first_at_clip_level(context: SearchContext, sets: Tensor) -> Optional[int]:
    # The row of the first (smallest) of ``sets`` within 20 dB of the clip's loudest feature.
    return next((row for row in range(sets.shape[0]) if level_db(context.energy, sets[row]) >= MIN_LEVEL_DB), None)


def loud_regions_first(context: SearchContext, peaks: List[int]) -> Tuple[Optional[SearchResult], Tuple[str, ...]]:
    r"""Where no few loudest peaks keep the decision, search the loud regions (the bands around the
    loud peaks, the loud tiers, the loud spreads) before the whole spectrum.

    The bands around the clip's 1, 2, 4, ..., :data:`LOUD_BANDS` loudest peaks (each ``±``
    :data:`BAND_SHARE` of the features) are asked in one batch (at most 7 queries); inside the
    smallest that keeps the decision, the partition refinement (``prefer="energy"``, with the
    stopping rule) runs within :data:`LOUD_FIRST_QUERIES` queries. Its smallest passing set within
    20 dB of the clip's loudest feature (the level below which a set is flagged) is the answer: its
    features lead the ranking (they tie with the most responsible feature, and the ranking's
    energy tie-break puts them first) and the sets the shrink may start from are it and the
    larger ones the refinement saw pass. No refinement over the whole spectrum runs: on a model
    that normalises its input that refinement tends to end on a few near-empty bins, which the
    loud-band check (:func:`loud_band_check`) then had to replace, after 300-1,000 queries
    (``benchmarks/held_out_defaults.py --model instruments``: a held-out guitar 1,277 -> 391
    queries, its sufficient set 588 bins -> 3 at -2.6 dB; a bass 1,019 -> 393, 45 bins at -19 dB
    -> 2 at 0 dB). Where no band keeps the decision, the loud tiers are asked in one more batch
    (the clip's :data:`LOUD_TIER_MIN`, twice as many, ... loudest bins, up to
    :data:`LOUD_TIER_SHARE` of the features; at most 12 queries) and the refinement runs inside
    the smallest that passes, the same way (``"strategy": "loud tier"``): on a held-out
    instruments clip whose every band fails, the 8 loudest bins pass, and the explanation took
    295 queries for a 5-bin set at 0 dB where it took 1,149 for 2 bins at -14 dB. Where no tier
    passes either, the loud spreads are asked in one more batch (the loudest bin of each of
    :data:`LOUD_SPREAD_MIN`, twice as many, ... :data:`LOUD_SPREAD_MAX` equal stretches of the
    spectrum; at most 6 queries), the same way (``"strategy": "loud spread"``; :class:`AutoSearch`
    then orders the rest by the tail, :func:`rank_tail`). Before they were asked here, such a
    clip went through the refinement over the whole spectrum and its escalation first, and was
    asked the spreads only after them, where the set they found was quiet: the zoo's strings
    clip took 1,083 queries for 44 bins at -12 dB, and takes 646 for 40 bins at 0 dB (its searched
    sufficient-and-necessary and complete sets 13,182 -> 8,198 and 16,804 -> 8,207 bins); every
    8th held-out speech clip 24,916 -> 20,795 queries in all (``benchmarks/held_out_defaults.py
    --model speech --stride 8``). Where the set is
    tiny the loud-peak check follows, with candidates at the clip's level only. Skipped (nothing
    asked) when the stopping rule is off (``convergence_top_k=None``: every search runs, and the
    loud-band check after them).

    Args:
        context (SearchContext): The example's context (its energy and budget).
        peaks (list of int): :func:`loudest_peaks` of the example, loudest first.

    Returns:
        tuple: The result (``details["strategy"]`` ``"loud band"``, ``"loud tier"`` or ``"loud
        spread"``, ``details["loud_band"]`` its set's size, ``details["loud_tier"]`` or
        ``details["loud_spread"]`` the region's; None when no region passed or the refinement
        inside found no set at the clip's level) and the kinds of :data:`REGION_KINDS` asked whose
        every region failed: the loud-band check after the refinement would ask them again for
        nothing (where a region passed, the check's own refinement inside it gets a second chance;
        on the zoo's French clip, whose spreads pass and whose bands and tiers fail, 16 queries
        are spared the second time).
    """
    if context.options.convergence_top_k is None:
        return None, ()
    searched = _loud_region_search(context, peaks, LOUD_FIRST_QUERIES, REGION_KINDS)
    if searched is None:
        return None, ()
    spent, failed, found = searched
    sets = None if found is None else found.sets  # smallest first
    first = None if sets is None else _first_at_clip_level(context, sets)
    if found is None or sets is None or first is None:
        return None, failed
    chosen = sets[first]
    size = int(chosen.sum())
    # The chosen set, then the larger sets the refinement saw pass (a quieter smaller one would
    # start the shrink elsewhere).
    larger = [row for row in range(sets.shape[0]) if row != first and int(sets[row].sum()) >= size]
    ordered = torch.cat([chosen.unsqueeze(0), sets[larger]]).to(context.device)
    strategy = next((f"loud {kind}" for kind in REGION_KINDS[1:] if f"loud_{kind}" in found.details), "loud band")
    details = {**found.details, "strategy": strategy, "loud_band": size}
    return SearchResult(_leading(found.responsibility, chosen), spent, found.stopped_by, details, ordered), failed


def rank_tail(context: SearchContext, result: SearchResult) -> SearchResult:
    r"""Order the features a scattered cause's search left at zero by nested passing sets.

    Where no band separates the causes (a model that needs a little energy across the spectrum),
    the set the searches end on is tiny and every other feature has zero responsibility, so the
    ranking puts the loudest bins next: a few partials, which such a model does not take for the
    clip. One search along the interleaved order (at most :data:`TAIL_QUERIES` queries of what is
    left of the budget, which :class:`AutoSearch` keeps back from the adaptive search) narrows through passing sets ``S_1 ⊃ S_2 ⊃ ...``, each a random sample
    of the spectrum that kept the decision; a feature the first searches left at zero gets
    ``TAIL_SCALE * m * 2 ** (d - D)``, with ``m`` the least responsibility of a credited feature,
    ``d`` the deepest ``S_d`` holding it and ``D`` the deepest of all (0 when none holds it). So
    every credited feature still ranks first, and behind them the ranking's prefixes at the
    sizes of the ``S_d`` are sets seen to pass (the insertion curve's points in between).

    Args:
        context (SearchContext): The example's context.
        result (SearchResult): The scattered case's result (after the loud-peak check).

    Returns:
        SearchResult: ``result`` with the tail credited and the search's queries added
        (``details["tail_features"]``: the features of the largest nested set, None when the
        search found none), or ``result`` itself when there is no credited feature or too
        little budget left.
    """
    remaining = context.remaining
    values = result.responsibility.double().cpu().clone()
    step = 2**context.options.n_pieces - 1
    if (remaining is not None and remaining < step) or not bool((values > 0).any()):
        return result
    cap = TAIL_QUERIES if remaining is None else min(remaining, TAIL_QUERIES)
    options = dataclasses.replace(context.options, max_queries=cap, n_searches=1)
    tail = PartitionRefinement(order="interleaved", nesting=True).run(dataclasses.replace(context, options=options, queries=0))
    context.queries += tail.queries
    depth = tail.details["nesting"].double().cpu()
    zero = values == 0
    deepest = float(depth.max())
    details = {**result.details, "tail_features": None}
    if deepest > 0:
        credit = TAIL_SCALE * float(values[values > 0].min()) * torch.pow(2.0, depth - deepest)
        values[zero & (depth > 0)] = credit[zero & (depth > 0)]
        values /= values.sum()
        details["tail_features"] = int((depth > 0).sum())
    return SearchResult(values, result.queries + tail.queries, result.stopped_by, details, result.sets)


def _smallest(result: SearchResult) -> Optional[int]:
    """Features in the smallest passing set a search returned (None: it kept none)."""
    return None if result.sets is None or not result.sets.shape[0] else int(result.sets[0].sum())


def _louder_checks(
    context: SearchContext, result: SearchResult, failed: List[List[int]], peaks: List[int],
    failed_regions: Tuple[str, ...], scattered: bool,
) -> SearchResult:
    # After the searches over the whole spectrum: the loud-peak check, the loud-band check (no
    # kind of region asked again whose every region was asked first and failed) and, for a scattered
    # cause, the tail. (After a set found in a loud spread by this check, behind a search that was
    # not scattered, the tail would order the rest by random samples of the spectrum: two held-out
    # speech clips' complete sets grew from 51% and 65% of the bins to 78% and 82% with it.)
    checked = loud_peak_check(context, result, failed, peaks)
    checked = loud_band_check(context, checked, peaks, tuple(k for k in REGION_KINDS if k not in failed_regions))
    return rank_tail(context, checked) if scattered else checked


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
        empty_passes = context.empty_passes
        if empty_passes is None:  # not asked by the caller: one query
            empty_passes = bool(context.evaluate_sets(torch.zeros(1, context.n_features, device=context.device)).passes[0])
        if empty_passes:
            # The baseline alone keeps the decision: the empty set is sufficient and no feature is
            # needed (the explanation's warning says so); a search would only spend the budget.
            values = torch.zeros(context.n_features, dtype=torch.float64)
            return SearchResult(values, context.queries - start, "empty set passes", {"strategy": "empty set passes"})
        step = 2**context.options.n_pieces - 1
        if context.remaining is not None and context.remaining < step:
            # max_queries at its floor (one refinement step): the empty-set query left too little.
            values = torch.zeros(context.n_features, dtype=torch.float64)
            return SearchResult(values, context.queries - start, "max_queries", {"strategy": "frequency"})
        # Found once: the first LOUD_PEAKS of the LOUD_BANDS loudest are the LOUD_PEAKS loudest.
        peaks = loudest_peaks(context.energy, max(LOUD_PEAKS, LOUD_BANDS), loudest_first=context.loudest_first())
        loud, failed = loud_peaks_first(context, peaks)
        if loud is not None:
            return dataclasses.replace(loud, queries=context.queries - start)
        regional, failed_regions = loud_regions_first(context, peaks)
        if regional is not None:
            # Inside the bands, too, a near-empty bin beside a partial can pass as readily as
            # the partial: where the set is tiny, the loudest peaks are asked as after a search,
            # those within 20 dB of the loudest feature only (the set is at the clip's level).
            checked = loud_peak_check(context, regional, failed, peaks, at_clip_level=True)
            if regional.details["strategy"] == "loud spread":
                # A cause the loud spreads hold is scattered (no band or tier of loud bins holds
                # it): the rest of the ranking needs the tail, as after an escalation (the zoo's
                # strings clip: insertion AUC 0.47 without it, 0.98 with).
                checked = rank_tail(context, checked)
            return dataclasses.replace(checked, queries=context.queries - start)
        limit = max(SCATTERED_MIN, int(SCATTERED_SHARE * context.n_features))
        first = context.run_within_budget(PartitionRefinement(prefer="energy", scattered_above=limit))
        remaining = context.remaining
        if first.stopped_by != "scattered" or (remaining is not None and remaining < 3 * step):
            checked = _louder_checks(context, first, failed, peaks, failed_regions, scattered=False)
            details = {**checked.details, "strategy": "frequency"}
            return dataclasses.replace(checked, queries=context.queries - start, details=details)
        # One search can end scattered by chance: the one-cut probe of every order decides whether
        # another order narrows the set more; ties go to frequency order, refined afresh.
        # The tail's search (rank_tail) keeps its queries back from the adaptive search's budget.
        budget = context.options.max_queries
        reserve = TAIL_QUERIES if remaining is not None and remaining >= 3 * step + TAIL_QUERIES else 0
        held = context if budget is None or not reserve else dataclasses.replace(
            context, options=dataclasses.replace(context.options, max_queries=budget - reserve))
        second = held.run_within_budget(AdaptiveRefinement(prefer="energy"))
        context.queries = held.queries
        size, other = _smallest(first), _smallest(second)
        better = second if other is not None and (size is None or other < size) else first
        strategy = f"probed, refined along {second.details['order']}"
        if better is first:
            strategy += " (no smaller set than the first search's)"
        checked = _louder_checks(context, better, failed, peaks, failed_regions, scattered=True)
        details = {**checked.details, "strategy": strategy, "first_set": size, "second_set": other,
                   "first_queries": first.queries}
        return dataclasses.replace(checked, queries=context.queries - start, details=details)

