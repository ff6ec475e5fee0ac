"""Multiple explanations: further certified sufficient sets, pairwise disjoint from the first.

The ReX family's multiple explanations. A decision can have several independent causes (a note
recognised from its fundamental alone, or from its upper harmonics alone); the first sufficient
set names one of them. :func:`disjoint_sets` looks for the next one among the features that no
earlier set holds, and repeats until ``n_explanations`` sets are found or none is left:

1. **Root.** Keep every feature outside the earlier sets, alone. If that does not keep the
   decision, no further disjoint set is searched for: the earlier sets hold something every
   sufficient set needs (for a model monotone in what it is given). The stop says so.
2. **Search.** The explainer's own search runs over the allowed features only
   (:func:`~captum_freqrex._core.search.restricted.restrict_context`), with the same budget
   ``max_queries`` as the first search; with given ``attributions``, their ranking of the allowed
   features is used instead and nothing is searched.
3. **Extract.** The smallest sufficient prefix of that ranking, by the same batched exponential
   search and bisection as the first set (:func:`~captum_freqrex._core.certify.prefix.probe_sizes`).
4. **Shrink** (with ``explain(shrink=True)``), exactly as the first set
   (:func:`~captum_freqrex._core.certify.certify.shrink_sufficient`): deletions only, so the set
   stays disjoint.
5. **Certify.** The model is queried on the set alone, synthesised as ``Explanation.waveform``
   rebuilds it; a set whose claim does not hold is not returned, and the search stops with a
   warning.

**Budget per further set:** at most ``1 + max_queries + max_extraction_queries`` model queries
(root check, search, extraction with certification), plus ``max_shrink_queries`` with
``shrink=True``; :class:`~captum_freqrex._core.records.AlternativesReport` records what each set spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.certify.certify import shrink_sufficient
from captum_freqrex._core.certify.prefix import passing_prefix_size, prefix_masks, probe_sizes
from captum_freqrex._core.certify.ranking import rank_features
from captum_freqrex._core.certify.trust import Anchors, loudness, set_note
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.records import AlternativesReport, ProbeResult, SetCertificate, ShrinkReport
from captum_freqrex._core.search.base import RefinementOptions, ResponsibilitySearch, SearchContext
from captum_freqrex._core.search.evaluation import run_search
from captum_freqrex._core.search.restricted import restrict_context
from captum_freqrex._explanation import CausalSet

#: ``scorer(allowed) -> (values, queries, passing)``: scores ``(m,)`` of the ``m`` allowed
#: features (in id order), the queries spent on them, and sets ``(M, m)`` bool seen to pass (or None).
Scorer = Callable[[Tensor], Tuple[Tensor, int, Optional[Tensor]]]

#: Rows of the certification batch of one further set: its prefix, and the shrunk set.
_CERTIFICATION_ROWS = 2


class DisjointSets(NamedTuple):
    r"""What :func:`disjoint_sets` returns for one example.

    Attributes:
        sets (list of CausalSet): The further sufficient sets, each certified, pairwise disjoint
                    and disjoint from the first.
        report (AlternativesReport): Queries per set and why the search stopped.
        messages (list of str): Warnings (a set that did not hold on re-query).
    """

    sets: List[CausalSet]
    report: AlternativesReport
    messages: List[str]


@dataclass(frozen=True)
class DisjointSearch:
    r"""How each further set is found: its scorer, budgets and the ranking's tie width.

    Attributes:
        scorer (Scorer): Scores of the allowed features (see :data:`Scorer`).
        extraction_budget (int): Queries of the prefix search and certification of one set.
        shrink_budget (int): Queries of the shrink of one set (0: no shrink).
        rank_rtol (float): Tie width of the ranking (as ``explain(rank_rtol=...)``).
        seed (int): Seed of the shrink's random order.
        tie_tolerance (float, optional): The decision's tie tolerance, named in the notes.
    """

    scorer: Scorer
    extraction_budget: int
    shrink_budget: int = 0
    rank_rtol: float = 0.1
    seed: int = 0
    tie_tolerance: Optional[float] = None


class _Attempt(NamedTuple):
    found: Optional[CausalSet]
    queries: int
    reason: str  # why no set was found ("" when one was)
    warning: str = ""


def search_scorer(
    search: ResponsibilitySearch, context: Callable[[], SearchContext], options: Callable[[], RefinementOptions]
) -> Scorer:
    r"""A scorer that runs ``search`` over the allowed features of a fresh ``context()``.

    Args:
        search (ResponsibilitySearch): The explainer's search.
        context (Callable): A fresh ``"sufficient"``-mode context of the example over all features.
        options (Callable): Fresh search knobs (each further set gets its own ``max_queries``).

    Returns:
        Scorer: The responsibility of the allowed features, the search's queries, its passing sets.
    """

    def score(allowed: Tensor) -> Tuple[Tensor, int, Optional[Tensor]]:
        restricted = restrict_context(context(), allowed, options())
        result = run_search(search, restricted)
        return result.responsibility, restricted.queries, result.sets

    return score


def given_scorer(scores: Tensor) -> Scorer:
    r"""A scorer that reads given per-feature scores (``explain(attributions=...)``); no query.

    Args:
        scores (Tensor): ``(n_features,)`` scores of every feature.

    Returns:
        Scorer: The scores of the allowed features.
    """
    return lambda allowed: (scores[allowed.to(scores.device)], 0, None)


def _no_start(first: Optional[CausalSet], stable: bool) -> str:
    # Why no further set is searched for at all ("" when the first set is a fine start).
    if first is None:
        return "no sufficient set was found, so there is no first set to be disjoint from"
    if not stable:
        return "the model's output changed between calls, so no further set could be certified"
    if not first.certified:
        return "the first sufficient set is not certified, so no further set is searched for"
    if first.size == 0:
        return "the empty set is sufficient (the baseline alone gives the decision): no further set is needed"
    return ""


def disjoint_sets(
    queries: ExampleQueries, anchors: Anchors, first: Optional[CausalSet], n_explanations: int,
    how: DisjointSearch, stable: bool = True,
) -> DisjointSets:
    r"""Up to ``n_explanations - 1`` further certified sufficient sets, pairwise disjoint and
    disjoint from ``first`` (see the module docstring).

    Args:
        queries (ExampleQueries): The example and the model caller.
        anchors (Anchors): The model on the input and on the baseline alone.
        first (CausalSet, optional): The example's (certified) sufficient set.
        n_explanations (int): The most sets wanted, ``first`` included.
        how (DisjointSearch): The scorer and budgets.
        stable (bool, optional): Whether the model held its output at certification.

    Returns:
        DisjointSets: The sets, the report (queries per set, why it stopped) and warnings.
    """
    report = AlternativesReport(n_explanations)
    sets: List[CausalSet] = []
    messages: List[str] = []
    report.stopped = _no_start(first, stable)
    if report.stopped or first is None:
        return DisjointSets(sets, report, messages)
    taken = first.mask.detach().to(queries.space.device).bool().clone()
    while len(sets) + 1 < n_explanations:
        attempt = _next_set(queries, anchors, taken, how, len(sets) + 1)
        if attempt.found is None:
            report.stopped, report.stop_queries = attempt.reason, attempt.queries
            messages += [attempt.warning] if attempt.warning else []
            break
        sets.append(attempt.found)
        report.queries.append(attempt.queries)
        taken |= attempt.found.mask.to(taken.device)
    return DisjointSets(sets, report, messages)


def _next_set(queries: ExampleQueries, anchors: Anchors, taken: Tensor, how: DisjointSearch, earlier: int) -> _Attempt:
    # One further set among the features outside `taken` (the union of the `earlier` sets).
    space, target = queries.space, anchors.target
    allowed = ~taken
    m = int(allowed.sum())
    sets_word = f"the {earlier} earlier set{'s' if earlier > 1 else ''}"
    if m == 0:
        return _Attempt(None, 0, f"every feature is in {sets_word}: no feature is left for another set")
    root = queries.probes(queries.keep_scores(allowed.to(space.dtype).view(1, -1)), target)[0]
    if not root.passes:
        return _Attempt(None, 1, (
            f"keeping all {m} features outside {sets_word} does not keep the decision (the model decides class "
            f"{root.decided}, confidence in the target {root.confidence:.4f}): no further disjoint sufficient set"
        ))
    values, searched, passing = how.scorer(allowed)
    ids = allowed.nonzero().squeeze(1)
    energy = space.feature_energy(queries.example)
    order = rank_features(values.to(space.device), energy[ids], rtol=how.rank_rtol).to(ids.device)
    ranking = torch.cat([ids[order], taken.nonzero().squeeze(1)])
    # The search's passing set, where it leads the ranking, bounds the prefix from above.
    known = passing_prefix_size(passing, order) if passing is not None else None
    size, exact, spent = _smallest_prefix(
        queries, ranking, target, m if known is None else known, how.extraction_budget - _CERTIFICATION_ROWS
    )
    prefix = prefix_masks(ranking, [size])[0]
    shrunk, report = None, None
    if how.shrink_budget > 0 and size > 1:
        candidates = None
        if passing is not None and passing.shape[0]:
            candidates = torch.zeros(passing.shape[0], space.n_features, dtype=torch.bool, device=space.device)
            candidates[:, ids] = passing.to(space.device).bool()
        shrunk, report = shrink_sufficient(queries, ranking, target, size, candidates, how.shrink_budget, how.seed)
        spent += report.queries
        shrunk = None if torch.equal(shrunk, prefix) else shrunk
    keeps = [prefix] + ([shrunk] if shrunk is not None else [])
    kept = _certify(queries, target, keeps)
    total = 1 + searched + spent + len(keeps)
    chosen = _choose(keeps, kept, report)
    if chosen is None:
        note = set_note("sufficient", size, False, True, kept[0], None, how.tie_tolerance)
        warning = f"the next disjoint sufficient set ({size} features) did not hold on re-query: {note}"
        return _Attempt(None, total, warning, warning)
    mask, probe, shrink_report = chosen
    return _Attempt(_causal_set(queries, mask, probe, exact, shrink_report, how.tie_tolerance), total, "")


def _smallest_prefix(queries: ExampleQueries, ranking: Tensor, target: int, m: int, budget: int) -> Tuple[int, bool, int]:
    # The smallest probed prefix of `ranking` (over its first m) that keeps the decision; keeping
    # the first m is known to (the root: all the allowed features; or the search's passing set
    # at the ranking's top). Returns (size, resolved exactly, queries).
    lo, hi, spent = 0, m, 0
    while hi - lo > 1 and budget - spent > 0:
        sizes = probe_sizes(lo, hi, min(8, budget - spent))
        if not sizes:
            break
        results = queries.probes(queries.keep_scores(prefix_masks(ranking, sizes)), target)
        spent += len(sizes)
        passing = [k for k, r in zip(sizes, results) if r.passes]
        hi = min(passing + [hi])
        lo = max([k for k, r in zip(sizes, results) if not r.passes and k < hi] + [lo])
    return hi, hi - lo <= 1, spent


def _certify(queries: ExampleQueries, target: int, keeps: List[Tensor]) -> List[ProbeResult]:
    # Each set alone, synthesised on its own exactly as Explanation.waveform rebuilds it.
    space, example = queries.space, queries.example

    def waveforms(i: int) -> Tuple[Tensor, ...]:
        return tuple(w[0] for w in space.mutants(example, keeps[i].view(1, -1)))

    return queries.probes(queries.oracle.waveform_scores(example, len(keeps), waveforms), target)


def _choose(
    keeps: List[Tensor], kept: List[ProbeResult], report: Optional[ShrinkReport]
) -> Optional[Tuple[Tensor, ProbeResult, Optional[ShrinkReport]]]:
    # The shrunk set when it held on re-query, else the prefix when it did; None when neither.
    if len(keeps) > 1 and kept[1].passes:
        return keeps[1], kept[1], report
    if kept[0].passes:
        return keeps[0], kept[0], None
    return None


def _causal_set(
    queries: ExampleQueries, mask: Tensor, kept: ProbeResult, exact: bool, report: Optional[ShrinkReport],
    tie_tolerance: Optional[float],
) -> CausalSet:
    space = queries.space
    chosen = mask.bool()
    size = int(chosen.sum())
    note = set_note("sufficient", size, True, True, kept, None, tie_tolerance)
    certificate = SetCertificate(size, kept, None, True, exact, note, shrink=report)
    bins, energy = space.feature_sizes(), space.feature_energy(queries.example)
    return CausalSet("sufficient", chosen, int(bins[chosen].sum()), certificate, *loudness(chosen, energy, bins))
