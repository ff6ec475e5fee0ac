"""Searched sufficient-and-necessary and complete sets: evidence from both modes, checked, shrunk.

The prefix extraction (:mod:`~captum_freqrex._core.certify.prefix`) reads every set off the
sufficient ranking, so its sufficient-and-necessary set is the shortest *prefix* whose removal
changes the decision: on a model that shrugs off most removals, nearly the whole spectrum
("removing almost everything changes the decision" is no finding). :func:`search_joint_sets`
searches for these two sets instead:

1. **Necessary evidence.** Band screening
   (:class:`~captum_freqrex._core.search.band_screening.BandScreening`) in ``"necessary"`` mode
   looks for the fewest features whose removal from the input changes the decision (a tie never
   counts); the smallest flipping sets it saw are the candidates ``N``.
2. **Candidates.** Each ``N``, the sufficient set ``S`` and each ``S ∪ N`` is queried kept alone
   (does it keep the decision?) and removed from the input (does that change it?), in one batch;
   the smallest candidate for which both claims hold is kept, ``N`` plus the top of the ranking on
   a geometric grid of sizes among them (for models that are not monotone). Where none holds,
   contiguous bands of 1/16, 1/8 and 1/4 of the features, and last the prefix
   sufficient-and-necessary set (``start == "joint-prefix"`` in the shrink report).
3. **Shrink.** Features are dropped by batched deletions
   (:func:`~captum_freqrex._core.certify.shrink.shrink_set`) while both claims still hold.
4. **Complete.** From that set (or ``S`` when none was found), the best-ranked features not yet in
   it are added, on a geometric grid of counts and then a bisection, until the set kept alone
   reaches the input's confidence minus the tolerance; the added features are then shrunk while it
   still does.

Every accepted step was itself a model query; the caller certifies the returned sets by re-query
like every other set and falls back to the ranking's prefix where this search found nothing.
Queries: at most ``budget``: up to 2/5 for the screening, two thirds of the rest for the
sufficient-and-necessary set, the rest for the complete set.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.certify.prefix import probe_sizes
from captum_freqrex._core.certify.shrink import shrink_set
from captum_freqrex._core.certify.trust import Anchors
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.records import ProbeResult, ShrinkReport
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.base import RefinementOptions
from captum_freqrex._core.search.evaluation import run_search, search_context

#: Single flipping features tried beside ``S`` (the loudest of those the screening found).
SINGLE_FLIPS = 4

#: Equal-band splits of the feature axis whose bands are candidates too (16 + 8 + 4 bands).
COARSE_PARTS = (16, 8, 4)

#: Counts of added features probed per round of the complete set's growth.
GROWTH_GRID = 8

#: ``start`` of the :class:`ShrinkReport` of a searched set (every such ``start`` begins with it).
JOINT_START = "joint"

#: ``start`` of a searched sufficient-and-necessary set shrunk from the ranking's prefix.
PREFIX_START = "joint-prefix"


#: A prefix sufficient-and-necessary set no larger than the sufficient prefix and than this share
#: of the features is kept without a search: no smaller set both keeps and changes the decision
#: along the ranking, and it is already small.
SMALL_SHARE = 0.01


def worth_searching(k_sufficient: int, k_necessary: Optional[int], n_features: int) -> bool:
    r"""Whether the joint search may improve on the prefix sets: the prefix sufficient-and-necessary
    set is missing, larger than the sufficient prefix, or more than :data:`SMALL_SHARE` of the features.

    Args:
        k_sufficient (int): Size of the sufficient prefix.
        k_necessary (int, optional): Size of the prefix sufficient-and-necessary set (None: none).
        n_features (int): Number of features.

    Returns:
        bool: True where the search should run.
    """
    return k_necessary is None or k_necessary > k_sufficient or k_necessary > SMALL_SHARE * n_features


class JointSets(NamedTuple):
    r"""What :func:`search_joint_sets` found for one example (not certified yet).

    Attributes:
        necessary (Tensor, optional): Keep-mask ``(n_features,)`` of the sufficient-and-necessary
                    set (None: none found).
        necessary_report (ShrinkReport, optional): Its sizes before and after the shrink.
        complete (Tensor, optional): Keep-mask ``(n_features,)`` of the complete set (None: none
                    found short of the whole input).
        complete_report (ShrinkReport, optional): Its sizes before and after the shrink.
        queries (int): Model queries spent.
    """

    necessary: Optional[Tensor]
    necessary_report: Optional[ShrinkReport]
    complete: Optional[Tensor]
    complete_report: Optional[ShrinkReport]
    queries: int


class _Probe:
    # Counted model queries on sets of feature ids, kept alone and removed from the input. Each
    # set is queried once each way: asked again, the first answer is read back (a shrink's final
    # set, say, which the complete set's growth starts from).

    def __init__(self, queries: ExampleQueries, target: int) -> None:
        self.queries, self.target, self.spent = queries, target, 0
        self.known: Dict[Tuple[Tuple[int, ...], bool], ProbeResult] = {}

    def mask(self, ids: Sequence[int]) -> Tensor:
        space = self.queries.space
        keep = torch.zeros(space.n_features, device=space.device)
        keep[torch.tensor(list(ids), dtype=torch.long, device=space.device)] = 1.0
        return keep

    def results(self, sets: Sequence[Sequence[int]], removed: bool) -> List[ProbeResult]:
        """The model on each set kept alone (``removed=False``) or removed from the input."""
        keys = [(tuple(sorted(ids)), removed) for ids in sets]
        todo = list(dict.fromkeys(key for key in keys if key not in self.known))
        if todo:
            keeps = torch.stack([self.mask(ids) for ids, _ in todo])
            rows = 1.0 - keeps if removed else keeps
            self.spent += rows.shape[0]
            self.known.update(zip(todo, self.queries.probes(self.queries.keep_scores(rows), self.target)))
        return [self.known[key] for key in keys]

    def both(self, sets: Sequence[Sequence[int]]) -> List[bool]:
        """Whether each set changes the decision when removed (a tie is no change) and keeps it
        alone; the second is queried only where the first holds."""
        gone = self.results(sets, removed=True)
        kept = iter(self.results([ids for ids, g in zip(sets, gone) if g.changed], removed=False))
        return [bool(g.changed) and next(kept).passes for g in gone]


def flip_candidates(queries: ExampleQueries, anchors: Anchors, budget: int, seed: int) -> Tuple[List[List[int]], int]:
    r"""The smallest sets whose removal changed the decision in a necessary-mode band screening.

    Args:
        queries (ExampleQueries): The example and the model caller.
        anchors (Anchors): The model on the input and on the baseline alone.
        budget (int): Queries of the screening.
        seed (int): Seed of the screening's context.

    Returns:
        tuple: The candidate sets (feature ids; several single features, the loudest first, or the
        union of the smallest flipping sets) and the queries spent.
    """
    space = queries.space
    baseline = space.baseline_waveforms(queries.example)
    options = RefinementOptions(max_queries=budget)
    context = search_context(
        queries, anchors.target, baseline, bool(anchors.baseline.changed), "necessary", options, seed
    )
    values = run_search(BandScreening(), context).responsibility
    if not bool((values > 0).any()):
        return [], context.queries
    top = float(values.max())
    ids = (values == top).nonzero().squeeze(1)
    if round(1.0 / top) > 1:
        return [ids.tolist()], context.queries
    energy = space.feature_energy(queries.example).cpu()[ids]
    loudest = ids[energy.argsort(descending=True)][:SINGLE_FLIPS]
    return [[int(i)] for i in loudest], context.queries


def _coarse_bands(n: int) -> List[List[int]]:
    # Contiguous equal bands, 1/16 to 1/4 of the features, the narrowest first: where no small
    # removal flips the decision, removing (and keeping) a whole band often does both at once, a
    # hi-hat's top band, a kick's bottom one; the band screening's finer first level misses them.
    bands = []
    for parts in COARSE_PARTS:
        bounds = torch.linspace(0, n, parts + 1).round().long().tolist()
        bands += [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    return bands


def _shrink(
    probe: _Probe, test: Callable[[Sequence[List[int]]], List[bool]], members: List[int], budget: int, seed: int,
    prefix_size: Optional[int], cost: int,
) -> Tuple[List[int], ShrinkReport]:
    # ``cost``: the most queries ``test`` makes per set; the shrink counts the ones it made.
    generator = torch.Generator().manual_seed(seed)
    return shrink_set(test, members, budget, generator, prefix_size=prefix_size, start=JOINT_START,
                      spent=lambda: probe.spent, max_cost=cost)


def _necessary_set(
    probe: _Probe, sufficient: List[int], flips: List[List[int]], ranking: List[int], budget: int, seed: int,
    prefix_size: Optional[int],
) -> Tuple[Optional[List[int]], Optional[ShrinkReport]]:
    # The smallest of N, S, S ∪ N and N ∪ (the top of the ranking) that keeps the decision and
    # whose removal changes it; where none does, of the coarse bands; last, the prefix; then shrunk.
    # N ∪ the top of the ranking is for models that are not monotone: adding S to N can undo N's
    # flip (a snare's one decisive bin, removed with N, brings the snare back). The bands and the
    # prefix are for clips where no small removal the screening tried flips the decision.
    grown = [list(dict.fromkeys(flips[0] + ranking[:k])) for k in probe_sizes(0, len(ranking), GROWTH_GRID)] if flips else []
    prefix = [ranking[:prefix_size]] if prefix_size is not None else []
    first = [*flips, sufficient, *[list(dict.fromkeys(n + sufficient)) for n in flips], *grown]
    passed: List[List[int]] = []
    tried: List[List[int]] = []
    for stage in (first, _coarse_bands(len(ranking)), prefix):
        fresh = [list(ids) for ids in dict.fromkeys(map(tuple, stage)) if ids and list(ids) not in tried]
        candidates = fresh[: max((budget - probe.spent) // 2, 0)]
        tried += candidates
        passed = [ids for ids, ok in zip(candidates, probe.both(candidates)) if ok]
        if passed:  # the growth only where the plain candidates failed
            break
    if not passed:
        return None, None
    best = min(passed, key=len)
    spent = probe.spent
    members, report = _shrink(probe, probe.both, best, budget - spent, seed, prefix_size, cost=2)
    start = PREFIX_START if prefix and best == prefix[0] else JOINT_START
    return members, dataclasses.replace(report, queries=report.queries + spent, start=start)


def _complete_set(
    probe: _Probe, core: List[int], ranking: List[int], target_confidence: float, budget: int, seed: int,
    prefix_size: Optional[int],
) -> Tuple[Optional[List[int]], Optional[ShrinkReport]]:
    # Grow ``core`` along the ranking until it reaches target_confidence, then shrink what was added.
    inside = set(core)
    rest = [f for f in ranking if f not in inside]
    start = probe.spent

    def reaches(sets: Sequence[List[int]]) -> List[bool]:
        kept = probe.results([core + extra for extra in sets], removed=False)
        return [k.passes and k.confidence >= target_confidence for k in kept]

    known = {len(rest): True}  # the whole input reaches its own confidence
    known[0] = reaches([[]])[0]  # the core alone: often known already, from its own search
    sizes = [] if known[0] else probe_sizes(0, len(rest), GROWTH_GRID - 1)
    while sizes and probe.spent - start + len(sizes) <= budget // 2:
        known.update(zip(sizes, reaches([rest[:k] for k in sizes])))
        hi = min(k for k, ok in known.items() if ok)
        lo = max([k for k, ok in known.items() if not ok and k < hi], default=-1)
        sizes = probe_sizes(lo, hi, GROWTH_GRID)
    hi = min(k for k, ok in known.items() if ok)
    if hi >= len(rest):
        return None, None
    spent = probe.spent - start
    whole = len(core) + hi
    extra, report = _shrink(probe, reaches, rest[:hi], budget - spent, seed, whole if prefix_size is None else prefix_size, 1)
    report = dataclasses.replace(
        report, start_size=whole, size=len(core) + len(extra), queries=report.queries + spent
    )
    return core + extra, report


def search_joint_sets(
    queries: ExampleQueries, ranking: Tensor, anchors: Anchors, sufficient: Tensor, tolerance: float, budget: int,
    seed: int, prefix_sizes: Tuple[Optional[int], Optional[int]] = (None, None),
) -> JointSets:
    r"""Search the sufficient-and-necessary and complete sets of one example (see the module docstring).

    Args:
        queries (ExampleQueries): The example and the model caller.
        ranking (Tensor): ``(n_features,)`` feature ids, most responsible first.
        anchors (Anchors): The model on the input and on the baseline alone.
        sufficient (Tensor): Keep-mask ``(n_features,)`` of the sufficient set ``S`` (known to pass).
        tolerance (float): The complete set reaches the input's confidence minus this.
        budget (int): Most model queries, the screening's included.
        seed (int): Seed of the screening and of the shrinks' checks.
        prefix_sizes (tuple, optional): Sizes of the prefix sufficient-and-necessary and complete
                    sets (None where none), reported as the shrinks' ``prefix_size`` (None: the
                    size the shrink started from). Default: (None, None)

    Returns:
        JointSets: The keep-masks found (not certified yet), their shrink reports and the queries.
    """
    flips, screened = flip_candidates(queries, anchors, budget * 2 // 5, seed)
    probe = _Probe(queries, anchors.target)
    position = torch.empty_like(ranking)
    position[ranking] = torch.arange(ranking.numel(), device=ranking.device)
    ids = sufficient.bool().nonzero().squeeze(1)
    members = ids[position[ids].argsort()].tolist()  # most responsible first: deletions start at the end
    order = ranking.tolist()
    found, found_report = _necessary_set(probe, members, flips, order, (budget - screened) * 2 // 3, seed, prefix_sizes[0])
    rest = budget - screened - probe.spent
    core = found if found is not None else members
    complete, complete_report = _complete_set(
        probe, core, order, anchors.original.confidence - tolerance, rest, seed, prefix_sizes[1]
    )
    necessary = probe.mask(found) if found is not None else None
    whole = probe.mask(complete) if complete is not None else None
    return JointSets(necessary, found_report, whole, complete_report, screened + probe.spent)
