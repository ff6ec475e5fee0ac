"""Searched sufficient-and-necessary and complete sets: evidence from both modes, checked, shrunk.

The prefix extraction (:mod:`~captum_freqrex._core.certify.prefix`) reads every set off the
sufficient ranking, so its sufficient-and-necessary set is the shortest *prefix* whose removal
changes the decision: on a model that shrugs off most removals, nearly the whole spectrum
("removing almost everything changes the decision" is no finding). :func:`search_joint_sets`
searches for these two sets instead; the prefix extraction then searches the sufficient prefix
only. Every step asks only what its answer still needs:

1. **Coarse removals.** The sufficient set ``S``, the ranking's sufficient prefix and the 16
   contiguous equal bands (1/16 of the features each) are each removed from the input: one query
   each. The 8 bands of 1/8 and the 4 of 1/4 are removed only where no 1/16 band's removal
   changes the decision (they then decide whether to screen), or after step 3, where no
   candidate of at most 1/16 of the features holds both claims (they and ``S`` plus each are
   candidates then).
2. **Necessary evidence.** Only where a band of at most 1/8 of the features flipped the decision,
   band screening (:class:`~captum_freqrex._core.search.band_screening.BandScreening`) in
   ``"necessary"`` mode looks for the fewest features whose removal changes it (a tie never
   counts); the smallest flipping sets it saw are the candidates ``N``. Where no 1/16 band flipped
   (only a wider one), the screening would start blind: it runs only where none of the band
   candidates of step 3 (``S``, the sufficient prefix, the flipping bands and ``S`` plus each)
   holds both claims, and gets fewer queries (:data:`BLIND_SCREEN_QUERIES`). Its first level holds the
   16 equal bands already removed: their answers are read back, not asked again. Where no such
   band flips (speech clips whose decision no band's removal changes, notes that flip only
   without their lowest quarter), a screening would descend on no evidence, and is skipped.
3. **Candidates.** ``S``, the sufficient prefix, each ``N``, each ``S ∪ N``, ``N`` plus the top of
   the ranking on a geometric grid of sizes (for models that are not monotone), the flipping
   bands and ``S`` plus each: each is removed, and those whose removal changed the decision are
   kept alone (does it keep the decision?) the smallest first, a few per model call, until one
   does: the smallest for which both claims hold is kept, the larger ones are not asked. Where
   none holds, the loud runs are tried (:mod:`~captum_freqrex._core.search.loud_runs`): where
   the loudest tenth of the features with ``S`` keeps the decision kept alone, the smallest
   removal of runs of them that changes it, alone and with ``S``, is a candidate too (at most
   :data:`~captum_freqrex._core.search.loud_runs.QUERIES` + 4 queries; ``start ==
   "joint-loud-runs"`` in the shrink report). Where none holds, or the smallest is wider than a
   1/16 band, the ranking's shortest prefix whose removal changes the decision and that keeps it
   alone is searched too (the prefix extraction's grid, removals first; ``start ==
   "joint-prefix"`` in the shrink report). Where a candidate
   holds already, the grid is narrowed past its first round only where that round found a prefix
   shorter than the candidate: a longer one would not replace it. Last, where nothing found is as
   small as two 1/16 bands, the narrowest flipping band with ``S`` and the top of the ranking, on a
   grid of sizes up to another 1/16 band, are candidates too (a band that flips the decision can,
   kept alone with ``S``, take it elsewhere).
4. **Shrink.** Of a set larger than ``2 * GROWTH_GRID`` features, the fewest of its loudest
   features that still hold both claims (a bracket search over their count); then features are
   dropped by batched deletions (:func:`~captum_freqrex._core.search.shrink.shrink_set`) while
   both claims still hold (a prefix of the ranking, minimal along it already, gets the deletions
   only, within :data:`PREFIX_SHRINK_QUERIES`). A set's removal is queried first and its
   kept-alone query only where the removal changed the decision, and no set is queried twice the
   same way. This shrink keeps no queries back for the sampled check of single removals that
   the other shrinks end with (``ShrinkReport.checked``): with two claims per sampled feature it
   cost 16 queries, to sample a set of hundreds to 10^5 features that its report already shows
   was not shrunk to 1-minimal; a check runs only on queries the deletions leave over.

5. **Complete.** That set (or ``S`` when none was found), when it reaches the input's confidence
   minus the tolerance kept alone (its answer is known from its own search), is the complete set
   too; otherwise the best-ranked features not yet in it are added, on a geometric grid of
   :data:`GROWTH_FIRST` counts and then a bisection with what the growth's half of the budget
   leaves (each round's counts asked smallest first, four per model call, until one reaches it),
   until it does, and the added features are shrunk while it still does. The confidence is not
   monotone in what is added (on held-out percussion clip 104, adding 2% of the features reaches it
   and adding 3, 5, 10, 20, 40 or 80% does not), so the first grid is dense: a small set that reaches it is found where
   there is one, and it is the one worth reading.

Where ``S``'s own removal changes the decision, ``S`` holds both claims and steps 1 to 3 are
skipped (one query, its removal, where the extraction kept ``S`` alone already, the unshrunk
sufficient prefix; two otherwise); a 1-feature ``S`` needs no shrink either.

Every accepted step was itself a model query; the caller certifies the returned sets by re-query
like every other set. Queries: at most ``budget``, two thirds of it for the sufficient-and-necessary
set and the rest for the complete set, each stage within its own cap (:data:`SCREEN_QUERIES`,
:data:`PREFIX_QUERIES`, :data:`LOUD_QUERIES`, :data:`SHRINK_QUERIES`, :data:`PREFIX_SHRINK_QUERIES`,
:data:`COMPLETE_QUERIES`);
``benchmarks/queries_to_answer.py`` measures what the whole explanation spends.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.certify.prefix import probe_sizes, ranking_positions
from captum_freqrex._core.certify.trust import Anchors
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.records import CORE_START, ProbeResult, ShrinkReport
from captum_freqrex._core.search import loud_runs
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.base import RefinementOptions
from captum_freqrex._core.search.evaluation import KnownOutputs, run_search, search_context, set_key
from captum_freqrex._core.search.shrink import check_reserve, shrink_set
from captum_freqrex._core.spectral.space import ids_to_mask
from captum_freqrex._utils.ordered import ask_until_one_holds

#: Single flipping features tried beside ``S`` (the loudest of those the screening found).
SINGLE_FLIPS = 4

#: Equal-band splits of the feature axis whose bands are candidates too, the narrowest first: the
#: next is removed only where no band of the previous one changed the decision.
COARSE_PARTS = (16, 8, 4)

#: Candidates kept alone per model call while looking for the smallest that keeps the decision.
KEPT_BATCH = 4

#: Counts of added features probed per round of a bracket search (the complete set's refinement
#: rounds, the joint prefix's rounds).
GROWTH_GRID = 8

#: Counts of added features probed in the complete set's first round: a geometric grid from one
#: feature to all of them, about a factor of two apart on 10^4 features, so a window of sizes that
#: reaches the confidence and is twice as wide as it is low is not stepped over (with 7 counts, a
#: factor of three, held-out percussion clip 104's complete set was 85% of the features; 2.9% with
#: these 11; ``benchmarks/sn_sets.py``).
GROWTH_FIRST = 11

#: ``start`` of the :class:`ShrinkReport` of a searched set (every such ``start`` begins with it).
JOINT_START = "joint"

#: ``start`` of a searched sufficient-and-necessary set shrunk from the ranking's prefix.
PREFIX_START = "joint-prefix"

#: ``start`` of a searched sufficient-and-necessary set shrunk from a removal of loud runs.
LOUD_RUNS_START = "joint-loud-runs"

#: Equal bands of the first level of the band screening (and its log-width bands).
SCREEN_BANDS, SCREEN_LOG_BANDS = 16, 8

#: Most queries of the search for the ranking's shortest prefix that holds both claims.
PREFIX_QUERIES = 48

#: Most queries of the search for the fewest loudest features of a sufficient-and-necessary set.
LOUD_QUERIES = 32

#: Most queries of the band screening.
SCREEN_QUERIES = 64

#: Most queries of a band screening that starts blind: no 1/16 band's removal flipped the decision,
#: only a wider band's. Where such a screening found a single flipping frequency (held-out and
#: shipped percussion clips), it did in 31 and 33 queries; the others spent all 64 and found
#: nothing that changed the searched sets (the 3 s and 30 s piano crops, held-out clips). It runs
#: only where no band candidate holds both claims: where one does (the piano crops, 21 of the 262
#: held-out clips of both percussion models), its flips changed no searched set; where none does
#: (the shipped snare) they give the set (350 of 8,001 bins, against 2,820 from the prefix).
BLIND_SCREEN_QUERIES = 40

#: Most queries of each shrink (of the sufficient-and-necessary set, of what the complete set adds).
#: The deletions of a sufficient-and-necessary set get as many as when 64 held 16 back for the
#: sampled check: the same sets, 16 queries fewer.
SHRINK_QUERIES = 48

#: Most queries of the shrink of a sufficient-and-necessary set that is the ranking's prefix (32,
#: 8 of them kept back for the check, before). 96 was measured and not kept (``docs/method.md``,
#: step 4 of the searched sets): held-out speech's median such set 36% -> 25% of the features for
#: 54 more queries a clip, but three more of those sets fell below the clip's level (the deletions
#: took their loud bins), and on percussion 7 of 33 clips spent 41-73 more queries, mostly for a
#: bin or none, one complete set growing from 190 to 7,309 bins from its smaller core.
PREFIX_SHRINK_QUERIES = 24

#: Most queries kept back for the sampled check of the complete set's shrink (one query per sampled
#: feature; the sufficient-and-necessary set's shrink keeps none back, at two), where it adds no
#: more features than its shrink has queries: of more, the check only counted bins that could
#: still go (on the zoo's 3 s and 30 s piano, 19,019 and 202,566 added bins), and it is not asked
#: (nor its queries given to the deletions, so the sets are the same).
SHRINK_CHECK = 8

#: Most queries of the complete set's growth and shrink.
COMPLETE_QUERIES = 32

#: The complete set's share of the budget is at most 1/COMPLETE_SHARE (and what the
#: sufficient-and-necessary set left).
COMPLETE_SHARE = 3


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


_Key = Tuple[bytes, bool]

# A set of feature ids: a list, or a 1-D tensor where the set is a slice of an order (a ranking's
# prefix): its keep-mask is then built without converting 10^5 ids from a list.
_Ids = Union[List[int], Tensor]


def _packed(masks: Tensor) -> List[bytes]:
    # Each keep-mask row's members packed 8 to a byte (set_key, the necessary-mode search's keys): how
    # the probe knows a set whatever the order of its ids. Built from the mask a query needs
    # anyway, where a frozenset of the ids cost as much again (2 x 10^5 ids, a 30 s clip's
    # complete set: about 20 ms each way).
    return [set_key(row) for row in masks]


class _Probe:
    # Counted model queries on sets of feature ids, kept alone and removed from the input. Each
    # set is queried once each way: asked again, the first answer is read back (a shrink's final
    # set, say, which the complete set's growth starts from), by its key: its packed mask and
    # whether it was removed.

    def __init__(self, queries: ExampleQueries, target: int) -> None:
        self.queries, self.target, self.spent = queries, target, 0
        self.known: Dict[_Key, ProbeResult] = {}
        self.outputs: Dict[_Key, Tensor] = {}  # the model's rows behind them

    def masks(self, sets: Sequence[_Ids]) -> Tensor:
        space = self.queries.space
        return ids_to_mask(list(sets), space.n_features, space.device)

    def mask(self, ids: _Ids) -> Tensor:
        return self.masks([ids])[0]

    def key(self, ids: _Ids, removed: bool) -> _Key:
        return _packed(self._members([ids]))[0], removed

    def _members(self, sets: Sequence[_Ids]) -> Tensor:
        # Bool masks of the sets: a quarter of the float masks' memory to fill and pack, and only
        # the rows still to ask become keep-masks (most sets asked are known already).
        space = self.queries.space
        return ids_to_mask(list(sets), space.n_features, space.device, torch.bool)

    def results(self, sets: Sequence[_Ids], removed: bool) -> List[ProbeResult]:
        """The model on each set kept alone (``removed=False``) or removed from the input."""
        members = self._members(sets)
        keys = [(packed, removed) for packed in _packed(members)]
        todo: Dict[_Key, int] = {}  # each new set's first row
        for row, key in enumerate(keys):
            if key not in self.known:
                todo.setdefault(key, row)
        if todo:
            chosen = members[list(todo.values())].to(self.queries.space.dtype)
            rows = 1.0 - chosen if removed else chosen
            self.spent += rows.shape[0]
            outputs = self.queries.keep_scores(rows)
            self.outputs.update(zip(todo, outputs))
            self.known.update(zip(todo, self.queries.probes(outputs, self.target)))
        return [self.known[key] for key in keys]

    def removed_outputs(self, sets: Sequence[_Ids]) -> KnownOutputs:
        """The model's outputs on those of these sets already removed from the input, for a
        necessary-mode search to read back."""
        members = self._members(sets)
        keys = [(packed, True) for packed in _packed(members)]
        asked = [row for row, key in enumerate(keys) if key in self.outputs]
        rows = torch.stack([self.outputs[keys[row]] for row in asked]) if asked else torch.zeros(0, 0)
        return KnownOutputs(members[asked].to(self.queries.space.dtype), rows)

    def first_kept(self, sets: Sequence[List[int]], batch: int = KEPT_BATCH) -> Optional[List[int]]:
        """The first of ``sets`` that keeps the decision alone, queried ``batch`` at a time (None: none)."""
        kept = ask_until_one_holds(sets, lambda chunk: self.results(chunk, removed=False), _passes, batch)
        return next((ids for ids, result in zip(sets, kept) if result.passes), None)

    def both(self, sets: Sequence[_Ids]) -> List[bool]:
        """Whether each set changes the decision when removed (a tie is no change) and keeps it
        alone; the second is queried only where the first holds."""
        gone = self.results(sets, removed=True)
        kept = iter(self.results([ids for ids, g in zip(sets, gone) if g.changed], removed=False))
        return [bool(g.changed) and next(kept).passes for g in gone]


def _passes(result: ProbeResult) -> bool:
    return bool(result.passes)


def flip_candidates(
    queries: ExampleQueries, anchors: Anchors, budget: int, seed: int, known: Optional[KnownOutputs] = None,
) -> Tuple[List[List[int]], int]:
    r"""The smallest sets whose removal changed the decision in a necessary-mode band screening.

    The screening starts from :data:`SCREEN_BANDS` equal bands (and the log-width bands narrower
    than them, of :data:`SCREEN_LOG_BANDS`): it runs only where a coarse band's removal already
    flipped the decision, and a coarse first level reaches a single flipping frequency in fewer
    queries than a fine one (45 to 57 on the zoo's shipped percussion clips, against 84 to more than
    126 with the screening's defaults).

    Args:
        queries (ExampleQueries): The example and the model caller.
        anchors (Anchors): The model on the input and on the baseline alone.
        budget (int): Model queries of the screening.
        seed (int): Seed of the screening's context.
        known (KnownOutputs, optional): The model on sets already removed (the coarse bands of the
                    screening's first level): read back, not queried again. Default: None

    Returns:
        tuple: The candidate sets (feature ids; several single features, the loudest first, or the
        union of the smallest flipping sets) and the model queries spent.
    """
    space = queries.space
    baseline = space.baseline_waveforms(queries.example)
    # The screening counts the sets it reads back as queries: its cap grows by as many.
    options = RefinementOptions(max_queries=budget + (len(known.rows) if known is not None else 0))
    context = search_context(
        queries, anchors.target, baseline, bool(anchors.baseline.changed), "necessary", options, seed, known
    )
    # No unions of the best single features: as S&N candidates they changed the sets on 2 of 33
    # held-out percussion clips, one S&N set larger (160 -> 230 bins), the other mixed. No sets
    # around a single flip either: only the flipping features themselves are read back here.
    screening = BandScreening(
        n_bands=SCREEN_BANDS, log_bands=SCREEN_LOG_BANDS, union_sizes=(), flip_windows=0, quieter_probes=0,
        wide_splits=(), loud_runs=False,  # the joint search asks them itself, where no candidate holds
    )
    values = run_search(screening, context).responsibility
    spent = context.queries - (known.hits if known is not None else 0)
    if not bool((values > 0).any()):
        return [], spent
    top = float(values.max())
    ids = (values == top).nonzero().squeeze(1)
    if round(1.0 / top) > 1:
        return [ids.tolist()], spent
    energy = space.feature_energy(queries.example).cpu()[ids]
    loudest = ids[energy.argsort(descending=True)][:SINGLE_FLIPS]
    return [[int(i)] for i in loudest], spent


def _flipping_bands(probe: _Probe, head: List[List[int]], n: int, splits: Sequence[int]) -> List[List[int]]:
    # The equal bands of each split (``head`` asked in the same model call) whose removal changes
    # the decision, the narrowest split first.
    bands = [band for parts in splits for band in _coarse_bands(n, parts)]
    gone = probe.results([*head, *bands], removed=True)[len(head):]
    return [band.tolist() for band, g in zip(bands, gone) if g.changed]


def _grown_band(
    flipping: List[List[int]], sufficient: List[int], ranking: List[int], smaller_than: Optional[int],
) -> List[List[int]]:
    # The narrowest flipping band with S and the top of the ranking, up to another 1/16 band's
    # worth, on a geometric grid of counts: kept alone, a band whose removal flips the decision
    # can take it elsewhere even with S (a speech clip's 1/16 band with its one sufficient bin
    # sounds like another language), and the ranking's best features bring it back (held-out
    # speech clips 128 and 224: 13,557 -> 1,242 and 10,421 -> 1,646 bins, ``benchmarks/sn_sets.py``).
    # None where the largest is not smaller than ``smaller_than`` (the set found so far): the
    # largest is built first, and the others only where they are asked (about 9 ms for all 8 on a
    # 30 s clip, where most explanations do not ask them).
    counts = probe_sizes(0, len(ranking) // COARSE_PARTS[0], GROWTH_GRID)
    if not flipping or not counts:
        return []

    def grown(k: int) -> List[int]:
        return list(dict.fromkeys(flipping[0] + sufficient + ranking[:k]))

    largest = grown(counts[-1])
    if smaller_than is not None and len(largest) >= smaller_than:
        return []
    return [*map(grown, counts[:-1]), largest]


def _smallest_holding(probe: _Probe, sets: Sequence[List[int]], room: int) -> Optional[List[int]]:
    # The smallest of ``sets`` holding both claims (None: none), within ``room`` queries: each
    # set's removal first; then, the smallest first, kept alone until one keeps the decision, so
    # the larger ones are not asked.
    candidates = [list(ids) for ids in dict.fromkeys(map(tuple, sets)) if ids][: max(room // 2, 0)]
    gone = probe.results(candidates, removed=True)
    return probe.first_kept(sorted((ids for ids, g in zip(candidates, gone) if g.changed), key=len))


def _coarse_bands(n: int, parts: int) -> List[Tensor]:
    # Contiguous equal bands, ``parts`` of them (the band screening's first level cuts the same
    # equal bands): where no small removal flips the decision, removing (and keeping) a whole band
    # often does both at once, a hi-hat's top band, a kick's bottom one. Their ids as tensors: a
    # probe's keep-masks are built from them without converting 10^4-10^5 ids from lists.
    bounds = torch.linspace(0, n, parts + 1).round().long().tolist()
    return [torch.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _shrink(
    probe: _Probe, test: Callable[[Sequence[_Ids]], List[bool]], members: List[int], budget: int, seed: int,
    prefix_size: Optional[int], cost: int, check: int,
) -> Tuple[List[int], ShrinkReport]:
    # ``cost``: the most queries ``test`` makes per set; the shrink counts the ones it made.
    # ``check``: the most queries kept back for the sampled check of single removals.
    generator = torch.Generator().manual_seed(seed)
    return shrink_set(test, members, budget, generator, check=check, prefix_size=prefix_size, start=JOINT_START,
                      spent=lambda: probe.spent, max_cost=cost)


def _smallest_count(
    probe: _Probe, sets_of: Callable[[int], _Ids], known: Dict[int, bool], upper: int, budget: int,
) -> Optional[int]:
    # The smallest probed count k whose set ``sets_of(k)`` holds both claims (removed, it changes
    # the decision; kept alone, it keeps it), from the counts ``known`` so far: the prefix
    # extraction's grid (geometric, then a many-way bisection) between the largest failing count
    # and the smallest passing one (``upper`` while none passes), removals first and each
    # kept-alone query only where the removal flipped, within ``budget`` queries.
    charged = 0  # what asking every count's kept-alone query would have cost: the budget's measure
    while True:
        hi = min((k for k, ok in known.items() if ok), default=None)
        lo = max(k for k, ok in known.items() if not ok and (hi is None or k < hi))
        sizes = probe_sizes(lo, upper if hi is None else hi, GROWTH_GRID)
        if not sizes or charged + 2 * len(sizes) > budget:
            return hi
        verdicts, cost = _both_smallest_first(probe, [sets_of(k) for k in sizes], sizes)
        known.update(verdicts)
        charged += cost


def _both_smallest_first(probe: _Probe, sets: List[_Ids], sizes: List[int]) -> Tuple[Dict[int, bool], int]:
    # Both claims on the sets of the ascending ``sizes``: every removal in one call, then the sets
    # whose removal flipped kept alone, smallest first, KEPT_BATCH per call, until one keeps the
    # decision (a bracket needs no larger one). Returns the verdicts asked and what asking every
    # flipped set alone would have cost.
    before = probe.spent
    gone = probe.results(sets, removed=True)
    flipped = [(k, ids) for k, ids, g in zip(sizes, sets, gone) if g.changed]
    cost = probe.spent - before + sum(probe.key(ids, False) not in probe.known for _, ids in flipped)
    verdicts = {k: False for k, g in zip(sizes, gone) if not g.changed}
    kept = ask_until_one_holds([ids for _, ids in flipped], lambda chunk: probe.results(chunk, removed=False),
                               _passes, KEPT_BATCH)
    verdicts.update((k, bool(r.passes)) for (k, _), r in zip(flipped, kept))
    return verdicts, cost


def _until_one_holds(
    test: Callable[[Sequence[_Ids]], List[bool]], sets_of: Callable[[int], _Ids], sizes: List[int],
) -> Dict[int, bool]:
    # ``test`` on the sets of the ascending ``sizes``, KEPT_BATCH per model call, until one holds:
    # a bracket search needs only the smallest size that holds and those below it, so the larger
    # ones are not asked.
    results = ask_until_one_holds(sizes, lambda chunk: test([sets_of(k) for k in chunk]), bool, KEPT_BATCH)
    return dict(zip(sizes, results))


def _both_prefix(
    probe: _Probe, ranking: Tensor, everything_flips: bool, budget: int, below: Optional[int] = None,
) -> Optional[int]:
    # The ranking's shortest probed prefix that holds both claims (None: none found). With
    # ``below`` (a candidate of that size holds both already, and only a shorter prefix would
    # replace it), the bracket is narrowed past its first round only where that round found one
    # shorter than ``below``: on the zoo's piano none was, and the bisection spent 30 queries more
    # on prefixes longer than the candidate.
    n = ranking.numel()
    known = {0: False, n: everything_flips}  # removing nothing keeps the input; everything is the baseline

    def prefix(k: int) -> Tensor:
        return ranking[:k]

    if below is None:
        return _smallest_count(probe, prefix, known, n + 1, budget)
    first = _smallest_count(probe, prefix, known, n + 1, min(budget, 2 * GROWTH_GRID))
    if first is None or first >= below:
        return None
    return _smallest_count(probe, prefix, known, n + 1, budget - 2 * GROWTH_GRID)


def _necessary_set(
    probe: _Probe, queries: ExampleQueries, anchors: Anchors, sufficient: List[int], ranking: List[int],
    ranked: Tensor, budget: int, seed: int, sufficient_prefix: Optional[int],
) -> Tuple[Optional[List[int]], Optional[ShrinkReport], int]:
    # 0. S itself, where its removal flips the decision: it holds both claims, nothing else is
    # searched. 1. S, the sufficient prefix and the coarse bands, removed: one query each. 2. The band
    # screening, only where a band of at most 1/8 of the features flipped. 3. The candidates (N, S,
    # S ∪ N, the flipping bands and S ∪ each) kept alone where their removal flipped; where none
    # passes, N ∪ the top of the ranking; where still none, the loud runs. 4. Where nothing of at
    # most 1/16 of the features passed, the shortest prefix of the ranking whose removal flips.
    # 5. The smallest, its loudest part, shrunk.
    # N ∪ the top of the ranking is for models that are not monotone: adding S to N can undo N's
    # flip (a snare's one decisive bin, removed with N, brings the snare back).
    screened = 0
    start = JOINT_START
    if sufficient and probe.both([sufficient])[0]:  # S is sufficient and necessary: one removal says so
        best: Optional[List[int]] = sufficient
    else:
        best, start, screened = _candidates(
            probe, queries, anchors, sufficient, ranking, ranked, budget, seed, sufficient_prefix)
    if best is None:
        return None, None, screened
    start_size = len(best)
    # A prefix is minimal along the ranking already: only a short shrink is tried on it.
    prefix = start == PREFIX_START
    if len(best) > 2 * GROWTH_GRID and not prefix:
        best = _loudest_part(probe, best, queries.space.feature_energy(queries.example).cpu(),
                             min(budget - probe.spent - screened, LOUD_QUERIES))
    cap = PREFIX_SHRINK_QUERIES if prefix else SHRINK_QUERIES
    # No queries kept back for the sampled check (module docstring, step 4): at two claims per
    # sampled feature it cost 16, on the zoo's 3 s piano to say that a 542-bin set could lose
    # single bins (7 of 8 sampled).
    members, report = _shrink(probe, probe.both, best, min(budget - probe.spent - screened, cap), seed, None,
                              cost=2, check=0)
    return members, dataclasses.replace(report, start_size=start_size, queries=probe.spent + screened, start=start), screened


def _candidates(
    probe: _Probe, queries: ExampleQueries, anchors: Anchors, sufficient: List[int], ranking: List[int],
    ranked: Tensor, budget: int, seed: int, sufficient_prefix: Optional[int],
) -> Tuple[Optional[List[int]], str, int]:
    # Steps 1 to 4 of _necessary_set: the smallest candidate holding both claims (None: none), its
    # start, and the screening's queries. ``ranked``: ``ranking`` as a tensor, for its prefixes.
    n = len(ranking)
    screened = 0

    def left() -> int:
        return budget - probe.spent - screened

    head = [ids for ids in (sufficient, ranking[:sufficient_prefix or 0]) if ids]
    # The 1/16 bands first; the wider ones where none of them flips the decision (they decide
    # whether to screen) or, later, where no candidate of at most 1/16 of the features holds.
    flipping = _flipping_bands(probe, head, n, COARSE_PARTS[:1])
    wide_asked = not flipping
    if wide_asked:
        flipping = _flipping_bands(probe, head, n, COARSE_PARTS[1:])
    band_unions = [list(dict.fromkeys(ids + sufficient)) for ids in flipping[:SINGLE_FLIPS]]
    narrow = any(len(band) <= -(-n // 8) for band in flipping)
    best = None
    if wide_asked and narrow:
        # A screening that would start blind runs only where no band candidate holds both claims.
        best = _smallest_holding(probe, [*head, *flipping, *band_unions], left())
    flips: List[List[int]] = []
    if narrow and best is None:
        known = probe.removed_outputs(_coarse_bands(n, SCREEN_BANDS))
        cap = BLIND_SCREEN_QUERIES if wide_asked else SCREEN_QUERIES
        flips, screened = flip_candidates(queries, anchors, min(left() // 2, cap), seed, known)
    if best is None:  # the band candidates again: their answers are read back, not asked
        grown = [list(dict.fromkeys(flips[0] + ranking[:k])) for k in probe_sizes(0, n, GROWTH_GRID)] if flips else []
        unions = [list(dict.fromkeys(ids + sufficient)) for ids in flips]
        best = _smallest_holding(probe, [*head, *flips, *unions, *grown, *flipping, *band_unions], left())
    if not wide_asked and (best is None or len(best) > n // COARSE_PARTS[0]):
        wide = _flipping_bands(probe, [], n, COARSE_PARTS[1:])
        unions = [list(dict.fromkeys(ids + sufficient)) for ids in (flipping + wide)[len(band_unions) : SINGLE_FLIPS]]
        wider = _smallest_holding(probe, [*wide, *unions], left())
        if wider is not None and (best is None or len(wider) < len(best)):
            best = wider
    start = JOINT_START
    if best is None:
        best = _loud_run_set(probe, queries, sufficient, left())
        start = JOINT_START if best is None else LOUD_RUNS_START
    if best is None or len(best) > n // COARSE_PARTS[0]:
        k = _both_prefix(probe, ranked, bool(anchors.baseline.changed), min(left(), PREFIX_QUERIES),
                         below=None if best is None else len(best))
        if k is not None and (best is None or k < len(best)):
            best, start = ranking[:k], PREFIX_START
    # Last, where nothing found is as small as the largest of them: the narrowest flipping band
    # grown. Where a smaller set was found, these did not change its shrunk size (they did, either
    # way, on the zoo's shipped French clip: 1,004 -> 956 or 1,148 bins).
    band_grown = _grown_band(flipping, sufficient, ranking, None if best is None else len(best))
    if band_grown:
        found = _smallest_holding(probe, band_grown, left())
        if found is not None and (best is None or len(found) < len(best)):
            best, start = found, JOINT_START
    return best, start, screened


def _loud_run_set(probe: _Probe, queries: ExampleQueries, sufficient: List[int], room: int) -> Optional[List[int]]:
    # The smallest removal of runs of loud features that changes the decision (loud_run_flip),
    # alone or with S, where it also keeps the decision kept alone (None: none, or no room). Only
    # where the loud features with S keep the decision kept alone: on held-out speech clips 32 and
    # 96 they do not (a voice's loudest bins alone sound like another language), and the flipping
    # unions of runs found there, with S, named another class too; the check spares the runs' 41
    # queries on 3 of every 32nd held-out speech clip. Queries: the check, the runs, and at most 3
    # for the two candidates (the run's removal is read back).
    if room < loud_runs.QUERIES + 4:
        return None
    pool = loud_runs.loud_pool(queries.space.loudest_first(queries.example))
    if not probe.results([list(dict.fromkeys(pool.tolist() + sufficient))], removed=False)[0].passes:
        return None
    flip = loud_runs.loud_run_flip(lambda sets: loud_runs.probe_verdicts(probe.results(sets, removed=True)), pool)
    if flip is None:
        return None
    ids = flip.tolist()
    return _smallest_holding(probe, [list(dict.fromkeys(ids + sufficient)), ids], 4)


def _loudest_part(probe: _Probe, members: List[int], energy: Tensor, budget: int) -> List[int]:
    # The fewest of the loudest members that still keep the decision alone and change it when
    # removed: a bracket search over their count (removals first), before the shrink's deletions.
    ids = torch.tensor(members, dtype=torch.long)
    loud = ids[torch.sort(-energy[ids], stable=True).indices]  # loudest first, ties in members' order
    hi = _smallest_count(probe, lambda k: loud[:k], {0: False, len(loud): True}, len(loud), budget)
    keep = torch.zeros(energy.numel(), dtype=torch.bool)
    keep[loud[: len(loud) if hi is None else hi]] = True
    return ids[keep[ids]].tolist()


def _complete_check(added: int, shrink_budget: int) -> int:
    # Queries kept back for the sampled check of the complete set's shrink: only where its
    # deletions can reach single features. Of more added features than the shrink has queries the
    # result is not shrunk to 1-minimal (its report says so), and the check would only count bins
    # that could still go.
    return SHRINK_CHECK if added <= shrink_budget else 0


def _complete_set(
    probe: _Probe, core: List[int], ranking: Tensor, target_confidence: float, budget: int, seed: int,
) -> Tuple[Optional[List[int]], Optional[ShrinkReport]]:
    # Grow ``core`` along the ranking until it reaches target_confidence, then shrink what was added
    # (the whole input, where no probed growth reached it: the prefix extraction's answer then too).
    core_ids = torch.tensor(core, dtype=torch.long)
    inside = torch.zeros(ranking.numel(), dtype=torch.bool)
    inside[core_ids] = True
    rest = ranking[~inside[ranking]]  # in ranking order
    start = probe.spent

    def reaches(sets: Sequence[_Ids]) -> List[bool]:
        grown = [torch.cat([core_ids, extra]) if isinstance(extra, Tensor) else core + extra for extra in sets]
        kept = probe.results(grown, removed=False)
        return [k.passes and k.confidence >= target_confidence for k in kept]

    if not rest.numel():
        # The core is every feature (a sufficient-and-necessary set that is the whole input), and so
        # is the complete set, where the input reaches its own confidence (its answer is known from
        # the core's search; a model whose output changes between calls may miss it).
        if not reaches([[]])[0]:
            return None, None
        n = len(core)
        return list(core), ShrinkReport(n, n, CORE_START, n, probe.spent - start, 0, 0, False)
    known = {rest.numel(): True}  # the whole input reaches its own confidence
    known[0] = reaches([[]])[0]  # the core alone: often known already, from its own search
    # Each round is charged in full (its sizes above the first that reaches are not asked), so the
    # rounds, and the shrink's share of the budget, are what asking every size would leave.
    charged = probe.spent - start
    sizes = [] if known[0] else probe_sizes(0, rest.numel(), GROWTH_FIRST)
    while sizes and charged + len(sizes) <= budget // 2:
        charged += len(sizes)
        known.update(_until_one_holds(reaches, lambda k: rest[:k], sizes))
        hi = min(k for k, ok in known.items() if ok)
        lo = max([k for k, ok in known.items() if not ok and k < hi], default=-1)
        # The next round bisects with what the growth's half of the budget leaves.
        sizes = probe_sizes(lo, hi, min(GROWTH_GRID, budget // 2 - charged))
    hi = min(k for k, ok in known.items() if ok)
    spent = probe.spent - start
    whole = len(core) + hi
    shrink_budget = min(budget - charged, SHRINK_QUERIES)
    check = _complete_check(hi, shrink_budget)
    if not check:  # the deletions get what they had beside the check
        shrink_budget -= check_reserve(SHRINK_CHECK, shrink_budget)
    extra, report = _shrink(probe, reaches, rest[:hi].tolist(), shrink_budget, seed, whole, cost=1, check=check)
    report = dataclasses.replace(
        report, start_size=whole, size=len(core) + len(extra), queries=report.queries + spent
    )
    return core + extra, report


def search_joint_sets(
    queries: ExampleQueries, ranking: Tensor, anchors: Anchors, sufficient: Tensor, tolerance: float, budget: int,
    seed: int, sufficient_prefix: Optional[int] = None, prefix_kept: Optional[ProbeResult] = None,
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
        sufficient_prefix (int, optional): Size of the ranking's sufficient prefix, a candidate
                    beside ``S`` where ``S`` was shrunk from it. Default: None
        prefix_kept (ProbeResult, optional): The model on that prefix kept alone, already queried
                    by the extraction (not asked again). Default: None

    Returns:
        JointSets: The keep-masks found (not certified yet), their shrink reports and the queries.
    """
    probe = _Probe(queries, anchors.target)
    ranking = ranking.cpu()
    order = ranking.tolist()
    if sufficient_prefix and prefix_kept is not None:
        probe.known[probe.key(order[:sufficient_prefix], False)] = prefix_kept
    position = ranking_positions(ranking)
    ids = sufficient.bool().nonzero().squeeze(1)
    members = ids[position[ids].argsort()].tolist()  # most responsible first: deletions start at the end
    found, found_report, screened = _necessary_set(
        probe, queries, anchors, members, order, ranking, budget - budget // COMPLETE_SHARE, seed, sufficient_prefix
    )
    rest = budget - screened - probe.spent
    core = found if found is not None else members
    complete, complete_report = _complete_set(
        probe, core, ranking, anchors.original.confidence - tolerance, min(rest, COMPLETE_QUERIES), seed
    )
    necessary = probe.mask(found) if found is not None else None
    whole = probe.mask(complete) if complete is not None else None
    return JointSets(necessary, found_report, whole, complete_report, screened + probe.spent)
