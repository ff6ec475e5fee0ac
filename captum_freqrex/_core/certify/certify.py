"""Ranking -> certified sets: extract the three sets from a ranking, shrink, and certify by re-query.

:func:`certify_sets` runs the batched prefix search over the ranking
(:class:`~captum_freqrex._core.certify.prefix.PrefixSearch`), optionally shrinks the sufficient
set (:func:`~captum_freqrex._core.certify.shrink.shrink_set`), and then queries the model on every
returned set, exactly as ``Explanation.waveform`` rebuilds it, together with the unmasked input
(is the model stable?). Only sets whose claim held on that batch are certified. Where the
sufficient set is far below the clip's level and the searched sufficient-and-necessary set is
loud (:func:`quiet_to_replace`), that set, shrunk while it keeps the decision alone and re-queried,
takes its place, and the quiet set is returned beside the three.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.certify.joint import JOINT_START, PREFIX_START, search_joint_sets
from captum_freqrex._core.certify.prefix import PrefixSearch, passing_prefix_size, prefix_masks, ranking_positions
from captum_freqrex._core.certify.shrink import Ids, shrink_set
from captum_freqrex._core.certify.trust import STABILITY_TOLERANCE, Anchors, bin_level, loudness, set_note
from captum_freqrex._explanation import CausalSet
from captum_freqrex._explanation.informative import MIN_LEVEL_DB, level_floor
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.spectral.space import ids_to_mask
from captum_freqrex._core.records import ProbeResult, SetCertificate, ShrinkReport


class CertifiedSets(NamedTuple):
    r"""What :func:`certify_sets` returns for one example.

    Attributes:
        sets (list): The sufficient, sufficient-and-necessary and complete sets (None where none).
        queries (int): Model queries of extraction, shrink and certification.
        messages (list of str): Warnings: sets that did not hold, an unstable model.
        stable (bool): Whether the model's output on the unmasked input held between calls.
        quiet_sufficient (CausalSet, optional): The quiet sufficient set that a set at the clip's
                    level replaced (:func:`quiet_to_replace`); None where none was replaced.
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
    return _shrink_members(queries, members, target, budget, seed, k_suff, start)


def _shrink_members(
    queries: ExampleQueries, members: Tensor, target: int, budget: int, seed: int, prefix_size: int, start: str,
) -> Tuple[Tensor, ShrinkReport]:
    # Batched deletions from ``members`` (most responsible first: deletions start at the end) while
    # the set kept alone keeps the decision; a member at the clip's level is kept (_shrink_keeping).
    space = queries.space
    n = space.n_features

    def test(sets: Sequence[Ids]) -> List[bool]:
        return [r.passes for r in queries.probes(queries.keep_scores(ids_to_mask(sets, n, space.device)), target)]

    generator = torch.Generator().manual_seed(seed)
    level = bin_level(space.feature_energy(queries.example), space.feature_sizes()).to(members.device)
    pin = _loud_member(level, members)
    if pin is None or budget < 3:
        kept, report = shrink_set(test, members.tolist(), budget, generator, prefix_size=prefix_size, start=start)
    else:
        others = [int(f) for f in members if int(f) != pin]
        kept, report = _shrink_keeping(test, pin, others, budget, generator, prefix_size, start, _pin_can_go(level, pin))
    return ids_to_mask([kept], n, space.device)[0], report


#: The loudest member a shrink keeps (:func:`_shrink_keeping`) goes too where the rest passes
#: without it and the rest's loudest bin is within this many dB of it: as loud, to a listener (the
#: harmonics benchmark counts a set within 6 dB of the clip's loudest bin as at its peak).
PIN_DROP_DB = 6.0


def _within_db(level: Tensor, ids: Sequence[int], below: float = -MIN_LEVEL_DB, reference: Optional[float] = None) -> bool:
    # Whether a set's loudest bin is at most ``below`` dB under ``reference`` (default: the clip's
    # loudest bin, 20 dB under which a set is flagged).
    top = float(level.max()) if reference is None else reference
    return bool(ids) and top > 0 and float(level[list(ids)].max()) >= level_floor(top, below)


def _pin_can_go(level: Tensor, pin: int) -> Callable[[List[int]], bool]:
    """Whether the rest of a shrunk set may do without its pinned loudest member: where the rest's
    loudest bin is within PIN_DROP_DB of the pin's and not flagged below the clip's level. A shrink
    never trades a set at the clip's level for one flagged below it (the zoo's 10 s piano: a pin
    at -19.5 dB and a rest at -20.8 dB)."""
    pin_level = float(level[pin])
    return lambda ids: _within_db(level, ids, PIN_DROP_DB, pin_level) and _within_db(level, ids)


def _loud_member(level: Tensor, members: Tensor) -> Optional[int]:
    """The set's loudest feature when it is within ``-MIN_LEVEL_DB`` dB of the clip's loudest bin
    and the set holds more than it (None otherwise): the shrink keeps it, so a set at the clip's
    level stays there."""
    if members.numel() < 2:
        return None
    loudest = int(members[level[members].argmax()])
    if not _within_db(level, [loudest]):
        return None
    return loudest


def _shrink_keeping(
    test: Callable[[Sequence[Ids]], List[bool]], pin: int, others: List[int], budget: int,
    generator: torch.Generator, prefix_size: int, start: str, as_loud: Callable[[List[int]], bool],
) -> Tuple[List[int], ShrinkReport]:
    # Shrink ``others`` while ``others + [pin]`` passes. A loud set found by the search (the loud-band
    # check) would otherwise often lose its loud bins to a few quiet ones that the model takes as
    # readily; the listener wants the loud one. The pin alone is tried first (one query: then the
    # one remaining member's removal is known to fail), and the pin's own removal from the result
    # last: where the rest passes without it and is about as loud (``as_loud``: within PIN_DROP_DB
    # of it), the pin goes too (a set of two bins 4 and 6 dB below the clip's loudest is one bin,
    # the second); otherwise the report says whether the result is 1-minimal.
    first_size = len(others) + 1
    if test([[pin]])[0]:
        return [pin], ShrinkReport(prefix_size, first_size, start, 1, 1, 1, 0, True)
    pinned = torch.tensor([pin])
    rest, report = shrink_set(
        lambda sets: test([torch.cat((torch.as_tensor(ids, dtype=torch.long), pinned)) for ids in sets]), others,
        budget - 2, generator,
        prefix_size=prefix_size, start=start,
    )
    pin_removable = test([rest])[0]
    if pin_removable and as_loud(rest):
        # Its members' removals were asked beside the pin, not without it: only a single
        # feature is known 1-minimal (without it, the empty set: the baseline, which failed).
        single = len(rest) == 1
        return rest, ShrinkReport(
            prefix_size, first_size, start, len(rest), report.queries + 2, int(single), 0, single,
        )
    return [pin] + rest, ShrinkReport(
        prefix_size, first_size, start, len(rest) + 1, report.queries + 2, report.checked + 1,
        report.removable + int(pin_removable), report.exhaustive,
    )


def _certification(queries: ExampleQueries, target: int, keeps: List[Tensor], remove: Optional[Tensor]) -> _Certification:
    # The model on every returned set kept alone, on the input with the sufficient-and-necessary
    # set removed, and on the input again (is the model stable?), in one batch. Each set's
    # waveform is synthesised on its own, exactly as Explanation.waveform rebuilds it, so a
    # certificate holds on the waveform the user gets.
    keep_rows = keeps + ([1.0 - remove] if remove is not None else [])
    space, example = queries.space, queries.example

    def waveforms(i: int) -> Tuple[Tensor, ...]:
        if i == len(keep_rows):
            return queries.inputs
        return tuple(w[0] for w in space.mutants(example, keep_rows[i].view(1, -1)))

    joined = queries.oracle.waveform_scores(example, len(keep_rows) + 1, waveforms)
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
    quiet, extra = _replace_quiet(queries, ranking, target, sets, builder, shrink_budget, seed)
    return CertifiedSets(sets, spent + extra, messages, stable, quiet)


#: ``start`` of the :class:`ShrinkReport` of a sufficient set shrunk from the sufficient-and-necessary
#: set that replaced a quiet one (:func:`quiet_to_replace`).
CLIP_LEVEL_START = f"{JOINT_START}-clip-level"


def quiet_to_replace(sets: Sequence[Optional[CausalSet]]) -> Optional[CausalSet]:
    r"""The sufficient set to replace by a set at the clip's level, if any: the rule.

    A certified sufficient set far below the clip's level (flagged ``below_clip_level``: a faint
    bin the model happens to read on a near-silent input) gives way where the
    sufficient-and-necessary set was searched (the joint search, on by default: not a prefix of
    the ranking, which would hold the quiet set), is certified and is not flagged: that set is
    sufficient too, and at the clip's level (what a listener hears the model decide by).

    Args:
        sets (sequence): The sufficient, sufficient-and-necessary and complete sets (None where none).

    Returns:
        CausalSet or None: The quiet sufficient set to replace; None where it stays.
    """
    sufficient, both = sets[0], sets[1]
    if sufficient is None or both is None or not sufficient.certified or not _below_level(sufficient):
        return None
    searched = both.certificate.shrink is not None and both.certificate.shrink.start.startswith(JOINT_START)
    if not searched or not both.certified or both.flags:
        return None
    return sufficient


def _below_level(chosen: CausalSet) -> bool:
    return any(flag["flag"] == "below_clip_level" for flag in chosen.flags)


def _replace_quiet(
    queries: ExampleQueries, ranking: Tensor, target: int, sets: List[Optional[CausalSet]], builder: "_SetBuilder",
    budget: int, seed: int,
) -> Tuple[Optional[CausalSet], int]:
    # Replaces sets[0] in place where quiet_to_replace says so; returns the quiet set and the queries.
    quiet, both = quiet_to_replace(sets), sets[1]
    if quiet is None or both is None:
        return None, 0
    sets[0], spent = _clip_level_sufficient(queries, ranking, target, both, quiet, builder, budget, seed)
    return quiet, spent


def _clip_level_sufficient(
    queries: ExampleQueries, ranking: Tensor, target: int, both: CausalSet, quiet: CausalSet, builder: "_SetBuilder",
    budget: int, seed: int,
) -> Tuple[CausalSet, int]:
    # The sufficient set in place of ``quiet``: the sufficient-and-necessary set ``both``, shrunk
    # while it keeps the decision alone (one claim where it held two: held-out speech clip 208's
    # 6,262 bins became 989 at -1.1 dB, the zoo's French clip's 1,004 became 275 at 0 dB, in 64
    # queries each), its loudest member kept so it stays at the clip's level,
    # and the result re-queried; ``both`` itself where nothing goes or the re-query fails. Returns
    # the set and the queries spent.
    level = "that is silent" if math.isinf(quiet.level_db) else f"{-quiet.level_db:.0f} dB below it"
    chosen = f"chosen over a {quiet.size}-feature sufficient set {level} (Explanation.quiet_sufficient)"
    ids = both.mask.nonzero().squeeze(1).to(ranking.device)
    members = ids[ranking_positions(ranking)[ids].argsort()]  # most responsible first
    spent = 0
    if budget > 0 and members.numel() > 1:
        mask, report = _shrink_members(queries, members, target, budget, seed, members.numel(), CLIP_LEVEL_START)
        spent = report.queries
        if report.size < members.numel():
            kept = _kept_alone(queries, target, mask)
            spent += 1
            if kept.passes:
                found = (f"shrunk from the sufficient-and-necessary set ({members.numel()} features, at the clip's "
                         f"level) while it kept the decision alone, its loudest member kept; {chosen}")
                return builder.build("sufficient", report.size, mask.bool(), kept, report, found), spent
    note = "; ".join(n for n in (both.certificate.note, f"the sufficient-and-necessary set, at the clip's level, {chosen}") if n)
    certificate = dataclasses.replace(both.certificate, removed=None, note=note)
    return CausalSet("sufficient", both.mask, both.n_bins, certificate, both.energy_share, both.level_db), spent


def _kept_alone(queries: ExampleQueries, target: int, keep: Tensor) -> ProbeResult:
    # The model on one set kept alone, its waveform synthesised as Explanation.waveform rebuilds it.
    space, example = queries.space, queries.example
    scores = queries.oracle.waveform_scores(example, 1, lambda i: tuple(w[0] for w in space.mutants(example, keep.view(1, -1))))
    return queries.probes(scores, target)[0]


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
    if joint.necessary_report is not None and joint.necessary_report.start == PREFIX_START:
        how["sufficient_necessary"] = "from the ranking's shortest prefix whose removal changes the decision"
    for name, mask, report in (("sufficient_necessary", joint.necessary, joint.necessary_report),
                               ("complete", joint.complete, joint.complete_report)):
        if mask is not None and report is not None:
            masks[name], reports[name] = mask, report
            notes[name] = (f"searched ({how[name]}; shrunk from {report.start_size} to {report.size} features while "
                           "its claims held)")
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
