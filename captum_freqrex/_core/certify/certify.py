"""Ranking -> certified sets: extract the three sets from a ranking, shrink, and certify by re-query.

:func:`certify_sets` runs the batched prefix search over the ranking
(:class:`~captum_freqrex._core.certify.prefix.PrefixSearch`), optionally shrinks the sufficient
set (:func:`~captum_freqrex._core.search.shrink.shrink_set`), and then queries the model on every
returned set, exactly as ``Explanation.waveform`` rebuilds it, together with the unmasked input
(is the model stable?). Only sets whose claim held on that batch are certified. Where the
sufficient set is far below the clip's level and the searched sufficient-and-necessary set is
loud (:mod:`~captum_freqrex._core.certify.clip_level`), that set, shrunk while it keeps the decision alone and re-queried,
takes its place, and the quiet set is returned beside the three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.certify.clip_level import replace_quiet
from captum_freqrex._core.certify.joint import JOINT_START, LOUD_RUNS_START, PREFIX_START, search_joint_sets
from captum_freqrex._core.certify.loud_shrink import shrink_members
from captum_freqrex._core.certify.prefix import PrefixSearch, passing_prefix_size, prefix_masks, ranking_positions
from captum_freqrex._core.certify.trust import STABILITY_TOLERANCE, Anchors, loudness, set_note
from captum_freqrex._explanation import CausalSet
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.records import CORE_START, ProbeResult, SetCertificate, ShrinkReport


class CertifiedSets(NamedTuple):
    r"""What :func:`certify_sets` returns for one example.

    Attributes:
        sets (list): The sufficient, sufficient-and-necessary and complete sets (None where none).
        queries (int): Model queries of extraction, shrink and certification.
        messages (list of str): Warnings: sets that did not hold, an unstable model.
        stable (bool): Whether the model's output on the unmasked input held between calls.
        quiet_sufficient (CausalSet, optional): The quiet sufficient set that a set at the clip's
                    level replaced (:func:`~captum_freqrex._core.certify.clip_level.quiet_to_replace`); None where none was replaced.
    """

    sets: List[Optional[CausalSet]]
    queries: int
    messages: List[str]
    stable: bool
    quiet_sufficient: Optional[CausalSet] = None


class _Certification(NamedTuple):
    kept: List[ProbeResult]  # each returned set kept alone
    removed: Optional[ProbeResult]  # the input without the sufficient-and-necessary set
    again: ProbeResult  # the unmasked input, queried again
    again_outputs: Tensor


def _prefix_outputs(queries: ExampleQueries, ranking: Tensor, keep_sizes: List[int], remove_sizes: List[int]) -> Tensor:
    # Outputs for mutants keeping the top-k features (keep_sizes), then for mutants removing
    # them (remove_sizes). Masks are built per model call: on long clips a mask per size
    # would cost as much memory as the mutants.
    sizes = [(k, False) for k in keep_sizes] + [(k, True) for k in remove_sizes]

    def keeps(lo: int, hi: int) -> Tensor:
        chunk = sizes[lo:hi]
        masks = prefix_masks(ranking, [k for k, _ in chunk])
        removes = torch.tensor([r for _, r in chunk], device=masks.device)
        masks[removes] = 1.0 - masks[removes]
        return masks

    return queries.keep_scores_of(len(sizes), keeps)


def shrink_sufficient(
    queries: ExampleQueries, ranking: Tensor, target: int, k_suff: int, candidates: Optional[Tensor], budget: int,
    seed: int,
) -> Tuple[Tensor, ShrinkReport]:
    r"""Shrink the sufficient set by batched deletions (the caller certifies the result).

    Starts from the smallest set known to pass: the sufficient prefix of the ranking, or a smaller
    set the search saw pass (``candidates``, ``(M, n_features)`` bool).

    Returns:
        tuple: The shrunk keep-mask ``(n_features,)`` and the :class:`ShrinkReport`.
    """
    position = ranking_positions(ranking)
    members, start = ranking[:k_suff], "prefix"
    if candidates is not None and candidates.shape[0]:
        counts = candidates.sum(dim=1)
        smallest = candidates[int(counts.argmin())]
        if 0 < int(counts.min()) < k_suff:
            ids = smallest.to(ranking.device).nonzero().squeeze(1)
            members, start = ids[position[ids].argsort()], "search"
    return shrink_members(queries, members, target, budget, seed, k_suff, start)


def _certification(queries: ExampleQueries, target: int, keeps: List[Tensor], remove: Optional[Tensor]) -> _Certification:
    # The model on every returned set kept alone, on the input with the sufficient-and-necessary
    # set removed, and on the input again (is the model stable?), in one batch. Each set's
    # waveform is synthesised on its own, exactly as Explanation.waveform rebuilds it, so a
    # certificate holds on the waveform the user gets.
    keep_rows = keeps + ([1.0 - remove] if remove is not None else [])
    joined = queries.set_scores(keep_rows, with_input=True)
    results = queries.probes(joined, target)
    removed = results[len(keeps)] if remove is not None else None
    return _Certification(results[: len(keeps)], removed, results[-1], joined[-1])


def _stability(anchors: Anchors, check: _Certification) -> Tuple[bool, List[str]]:
    # A model whose output on the unmasked input changed between calls certifies nothing.
    original, again = anchors.original, check.again
    drift = float((check.again_outputs - anchors.outputs).abs().max())
    scale = float(anchors.outputs.abs().max()) + 1.0
    stable = again.decided == original.decided and again.passes == original.passes and drift <= STABILITY_TOLERANCE * scale
    if stable:
        return True, []
    return False, [
        f"the model's output on the unmasked input changed between calls (by up to {drift:.3g}; class "
        f"{original.decided} then {again.decided}): a nondeterministic model (dropout or "
        "batch-norm in training mode?) or one whose output depends on the rest of its batch; "
        "no set can be certified (call model.eval())"
    ]


class _Found(NamedTuple):
    sizes: Dict[str, Optional[int]]  # prefix size of each set, by name
    exact: Dict[str, bool]
    masks: Dict[int, Tensor]  # keep-mask of each prefix size
    queries: int
    kept: Dict[int, ProbeResult]  # the model on each probed prefix kept alone
    prefixes: bool = True  # the masks are prefixes of the ranking (False: the search's own set)


def _one_feature_set(candidates: Optional[Tensor], ranking: Tensor) -> Optional[_Found]:
    # The search's own one-feature passing set, where it saw one pass. Nothing smaller passes (the
    # empty set is the baseline alone, which the anchors saw fail), so it is the sufficient set the
    # shrink would return from the ranking's sufficient prefix: that prefix, which the joint search
    # and the shrink (starting here) do not need, is not searched. None: no such set.
    if candidates is None or not candidates.shape[0]:
        return None
    counts = candidates.sum(dim=1)
    if int(counts.min()) != 1:
        return None
    mask = candidates[int(counts.argmin())].to(device=ranking.device, dtype=torch.float32)
    sizes: Dict[str, Optional[int]] = {"sufficient": 1, "sufficient_necessary": None, "complete": None}
    return _Found(sizes, {"sufficient": True, "necessary": False, "complete": False}, {1: mask}, 0, {}, False)


def _find_prefixes(
    queries: ExampleQueries, ranking: Tensor, anchors: Anchors, tolerance: float, budget: int, sufficient_only: bool,
    known_sufficient: Optional[int] = None,
) -> _Found:
    target, original = anchors.target, anchors.original

    def query(keep_sizes: List[int], remove_sizes: List[int]) -> Tuple[List[ProbeResult], List[ProbeResult]]:
        if not keep_sizes and not remove_sizes:
            return [], []
        results = queries.probes(_prefix_outputs(queries, ranking, keep_sizes, remove_sizes), target)
        return results[: len(keep_sizes)], results[len(keep_sizes):]

    search = PrefixSearch(
        query, queries.space.n_features, original, original.confidence - tolerance, budget, anchors.baseline,
        sufficient_only=sufficient_only, known_sufficient=known_sufficient,
    )
    k_suff, k_nec, k_comp, exact = search.run()
    sizes = {"sufficient": k_suff, "sufficient_necessary": k_nec, "complete": k_comp}
    keep_sizes = sorted({k for k in sizes.values() if k is not None})
    masks = dict(zip(keep_sizes, prefix_masks(ranking, keep_sizes))) if keep_sizes else {}
    return _Found(sizes, exact, masks, search.queries, search.keep_cache)


def certify_sets(
    queries: ExampleQueries,
    ranking: Tensor,
    anchors: Anchors,
    tolerance: float,
    budget: int,
    shrink_budget: int = 0,
    candidates: Optional[Tensor] = None,
    seed: int = 0,
    tie_tolerance: Optional[float] = None,
    joint_budget: int = 0,
) -> CertifiedSets:
    r"""The certified sufficient, sufficient-and-necessary and complete sets of one example.

    Args:
        queries (ExampleQueries): The example and the model caller.
        ranking (Tensor): ``(n_features,)`` feature ids, most responsible first.
        anchors (Anchors): The model on the input and on the baseline alone.
        tolerance (float): The complete set reaches the input's confidence minus this.
        budget (int): Queries of the prefix search.
        shrink_budget (int, optional): Queries of the shrink of the sufficient set (0: no shrink).
        candidates (Tensor, optional): ``(M, n_features)`` sets the search saw pass, where the
                    shrink may start.
        seed (int, optional): Seed of the shrink's random order.
        tie_tolerance (float, optional): The decision's tie tolerance, named in the notes.
        joint_budget (int, optional): Most queries of the search for the sufficient-and-necessary
                    and complete sets (:mod:`~captum_freqrex._core.certify.joint`); the prefix
                    extraction then searches the sufficient prefix only, and, with a shrink, not
                    at all where the search saw a one-feature set pass (that set is the sufficient
                    set) (0: the three sets are prefixes of the ranking). Default: 0

    Returns:
        CertifiedSets: The sets, the queries spent, warnings and whether the model was stable.
    """
    target = anchors.target
    searching = joint_budget > 0 and anchors.original.passes
    found = _one_feature_set(candidates, ranking) if searching and shrink_budget > 0 else None
    if found is None:
        # Where the search's passing set is the ranking's top, the sufficient prefix is at most it
        # (the sufficient size alone is searched here; the certification re-queries it).
        known = passing_prefix_size(candidates, ranking) if searching else None
        found = _find_prefixes(queries, ranking, anchors, tolerance, budget, sufficient_only=searching,
                               known_sufficient=known)
    sizes, masks = found.sizes, found.masks
    k_suff, k_nec = sizes["sufficient"], sizes["sufficient_necessary"]
    shrunk, report, shrink_queries = None, None, 0
    if shrink_budget > 0 and k_suff is not None and k_suff > 1:
        shrunk, report = shrink_sufficient(queries, ranking, target, k_suff, candidates, shrink_budget, seed)
        shrink_queries = report.queries
        if torch.equal(shrunk, masks[k_suff]):
            shrunk = None  # nothing dropped: the prefix is certified as before
    searched = _searched(queries, ranking, anchors, found, shrunk, tolerance, joint_budget, seed)
    keep_sizes = sorted(masks)
    keeps = [masks[k] for k in keep_sizes] + ([shrunk] if shrunk is not None else [])
    # A searched set equal to a set already in the batch (the sufficient set, often) shares its row.
    rows = [next((i for i, row in enumerate(keeps) if torch.equal(row, searched.masks[name])), None)
            for name in searched.masks]
    keeps += [searched.masks[name] for name, row in zip(searched.masks, rows) if row is None]
    remove = searched.masks.get("sufficient_necessary", masks.get(k_nec) if k_nec is not None else None)
    check = _certification(queries, target, keeps, remove)
    fresh = iter(range(len(keeps) - sum(row is None for row in rows), len(keeps)))
    kept_searched = {name: check.kept[row if row is not None else next(fresh)] for name, row in zip(searched.masks, rows)}
    stable, messages = _stability(anchors, check)
    kept_by_size = dict(zip(keep_sizes, check.kept))
    kept_shrunk = check.kept[len(keep_sizes)] if shrunk is not None else None
    space = queries.space
    builder = _SetBuilder(anchors, check.removed, tolerance, stable, found.exact, tie_tolerance,
                          space.feature_sizes(), space.feature_energy(queries.example), messages)
    sets: List[Optional[CausalSet]] = []
    for name, k in sizes.items():
        if name in kept_searched:
            joint = searched.reports[name]
            sets.append(builder.build(name, joint.size, searched.masks[name].bool(), kept_searched[name], joint,
                                      searched.notes[name]))
            continue
        if k is None:
            sets.append(None)
            continue
        kept, mask, set_report = kept_by_size[k], masks[k].bool(), report if name == "sufficient" else None
        if name == "sufficient" and shrunk is not None and report is not None:
            if kept_shrunk is not None and kept_shrunk.passes:
                kept, mask, k = kept_shrunk, shrunk.bool(), report.size
            else:  # the shrunk set did not hold on re-query; the prefix did, and is returned
                messages.append(
                    f"the shrunk sufficient set ({report.size} features) did not hold on re-query; the "
                    f"sufficient prefix ({k} features) is returned"
                )
                set_report = None
        sets.append(builder.build(name, k, mask, kept, set_report, searched.notes.get(name, "")))
    certification_queries = len(keeps) + (remove is not None) + 1
    spent = found.queries + certification_queries + shrink_queries + searched.queries
    quiet, extra = replace_quiet(queries, ranking, target, sets, builder.build, shrink_budget, seed)
    return CertifiedSets(sets, spent + extra, messages, stable, quiet)


class _Searched(NamedTuple):
    masks: Dict[str, Tensor]  # searched keep-masks that replace the prefix, by set name
    reports: Dict[str, ShrinkReport]
    notes: Dict[str, str]  # how each set was found, for its certificate's note
    queries: int


def _searched(
    queries: ExampleQueries, ranking: Tensor, anchors: Anchors, found: _Found, shrunk: Optional[Tensor],
    tolerance: float, budget: int, seed: int,
) -> _Searched:
    # The joint search, where the prefix extraction searched the sufficient set only; each note
    # says how its set was found.
    k_suff = found.sizes["sufficient"]
    if budget <= 0 or k_suff is None or not anchors.original.passes:
        return _Searched({}, {}, {}, 0)
    sufficient = shrunk if shrunk is not None else found.masks[k_suff]
    prefix = k_suff if found.prefixes else None  # a candidate of its own, where it was searched
    joint = search_joint_sets(queries, ranking, anchors, sufficient, tolerance, budget, seed, prefix,
                              found.kept.get(k_suff))
    masks, reports, notes = {}, {}, {}
    how = {
        "sufficient_necessary": "from the sufficient set, coarse bands and a necessary-mode band screening",
        "complete": "grown from its core along the ranking",
    }
    start = joint.necessary_report.start if joint.necessary_report is not None else None
    if start == PREFIX_START:
        how["sufficient_necessary"] = "from the ranking's shortest prefix whose removal changes the decision"
    elif start == LOUD_RUNS_START:
        how["sufficient_necessary"] = "from runs of the loudest features whose removal changes the decision"
    for name, mask, report in (("sufficient_necessary", joint.necessary, joint.necessary_report),
                               ("complete", joint.complete, joint.complete_report)):
        if mask is not None and report is not None:
            masks[name], reports[name] = mask, report
            notes[name] = (
                "the whole input: its core, the sufficient-and-necessary set, is every feature already"
                if report.start == CORE_START else
                f"searched ({how[name]}; shrunk from {report.start_size} to {report.size} features while its claims held)"
            )
        else:
            notes[name] = f"none found: the joint search ({joint.queries} queries) found no such set"
    return _Searched(masks, reports, notes, joint.queries)


@dataclass
class _SetBuilder:
    # What every set of one example shares when its certificate is written.
    anchors: Anchors
    removed: Optional[ProbeResult]  # the input without the sufficient-and-necessary set
    tolerance: float
    stable: bool
    exact: Dict[str, bool]
    tie_tolerance: Optional[float]
    bins: Tensor  # bins per feature
    energy: Tensor  # energy per feature
    messages: List[str]  # warnings, appended to

    def build(
        self, name: str, k: int, mask: Tensor, kept: ProbeResult, report: Optional[ShrinkReport], found: str = "",
    ) -> CausalSet:
        """The set, whether its claim held on the certification batch, its certificate and loudness
        (``found``: how it was found, added to its note)."""
        original = self.anchors.original
        gone = self.removed if name == "sufficient_necessary" else None
        if name == "sufficient":
            holds = kept.passes
        elif name == "sufficient_necessary":
            holds = kept.passes and gone is not None and bool(gone.changed)
        else:
            holds = kept.passes and kept.confidence >= original.confidence - self.tolerance
        note = "; ".join(n for n in (set_note(name, k, holds, self.stable, kept, gone, self.tie_tolerance), found) if n)
        if not holds:
            self.messages.append(f"the {name.replace('_', '-and-')} set did not hold on re-query: {note}")
        key = "necessary" if name == "sufficient_necessary" else name
        searched = report is not None and report.start.startswith(JOINT_START)
        exact = bool(report.one_minimal) if searched and report is not None else self.exact[key]
        certificate = SetCertificate(k, kept, gone, holds and self.stable, exact, note)
        if name == "sufficient" or searched:
            certificate.shrink = report
        return CausalSet(name, mask, int(self.bins[mask].sum()), certificate, *loudness(mask, self.energy, self.bins))
