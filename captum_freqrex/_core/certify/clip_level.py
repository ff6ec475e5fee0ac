"""A sufficient set far below the clip's level gives way to a loud one.

After certification, where the sufficient set is flagged ``below_clip_level`` (a faint bin the
model happens to read on a near-silent input) and the searched sufficient-and-necessary set is
certified and at the clip's level (:func:`quiet_to_replace`), that set, shrunk while it keeps the
decision alone with its loudest member kept
(:func:`~captum_freqrex._core.certify.loud_shrink.shrink_members`) and re-queried, becomes the
sufficient set where it is not flagged (:func:`replace_quiet`: not most of the spectrum); the
quiet one is returned beside the three as ``Explanation.quiet_sufficient``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, List, Optional, Sequence, Tuple

from torch import Tensor

from captum_freqrex._core.certify.joint import JOINT_START
from captum_freqrex._core.certify.loud_shrink import shrink_members
from captum_freqrex._core.certify.prefix import ranking_positions
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.records import ProbeResult, ShrinkReport
from captum_freqrex._explanation import CausalSet

#: ``build(name, size, mask, kept, report, found)``: a certified set's record (the certification's builder).
BuildSet = Callable[[str, int, Tensor, ProbeResult, Optional[ShrinkReport], str], CausalSet]

#: ``start`` of the :class:`ShrinkReport` of a sufficient set shrunk from the sufficient-and-necessary
#: set that replaced a quiet one (:func:`quiet_to_replace`).
CLIP_LEVEL_START = f"{JOINT_START}-clip-level"


def quiet_to_replace(sets: Sequence[Optional[CausalSet]]) -> Optional[CausalSet]:
    r"""The sufficient set to replace by a set at the clip's level, if any: the rule.

    A certified sufficient set far below the clip's level (flagged ``below_clip_level``: a faint
    bin the model happens to read on a near-silent input) gives way where the
    sufficient-and-necessary set was searched (the joint search, on by default: not a prefix of
    the ranking, which would hold the quiet set), is certified and is not flagged below the clip's
    level: that set is sufficient too, and at the clip's level (what a listener hears the model
    decide by). (Where it holds most of the spectrum, :func:`replace_quiet` replaces the quiet set
    only if its shrink brings it under half the features.)

    Args:
        sets (sequence): The sufficient, sufficient-and-necessary and complete sets (None where none).

    Returns:
        CausalSet or None: The quiet sufficient set to replace; None where it stays.
    """
    sufficient, both = sets[0], sets[1]
    if sufficient is None or both is None or not sufficient.certified or not _below_level(sufficient):
        return None
    searched = both.certificate.shrink is not None and both.certificate.shrink.start.startswith(JOINT_START)
    if not searched or not both.certified or _below_level(both):
        return None
    return sufficient


def _below_level(chosen: CausalSet) -> bool:
    return any(flag["flag"] == "below_clip_level" for flag in chosen.flags)


def replace_quiet(
    queries: ExampleQueries, ranking: Tensor, target: int, sets: List[Optional[CausalSet]], build: BuildSet,
    budget: int, seed: int,
) -> Tuple[Optional[CausalSet], int]:
    r"""Replace the sufficient set ``sets[0]`` (in place) where :func:`quiet_to_replace` says so.

    Args:
        queries (ExampleQueries): The example and the model caller.
        ranking (Tensor): ``(n_features,)`` feature ids, most responsible first.
        target (int): The decision.
        sets (list): The sufficient, sufficient-and-necessary and complete sets (None where none).
        build (Callable): Writes a certified set's record: ``build(name, size, mask, kept, report,
                    found)``, as the certification's set builder does.
        budget (int): Most queries of the shrink (0: none; the sufficient-and-necessary set itself
                    replaces the quiet one).
        seed (int): Seed of the shrink's sampled check.

    Returns:
        tuple: The quiet set replaced (None where none was: also where the set that would replace it
        holds most of the spectrum, flagged in its turn) and the model queries spent.
    """
    quiet, both = quiet_to_replace(sets), sets[1]
    if quiet is None or both is None:
        return None, 0
    loud, spent = _clip_level_sufficient(queries, ranking, target, both, quiet, build, budget, seed)
    if loud is None:
        return None, spent
    sets[0] = loud
    return quiet, spent


def _clip_level_sufficient(
    queries: ExampleQueries, ranking: Tensor, target: int, both: CausalSet, quiet: CausalSet, build: BuildSet,
    budget: int, seed: int,
) -> Tuple[Optional[CausalSet], int]:
    # The sufficient set in place of ``quiet``: the sufficient-and-necessary set ``both``, shrunk
    # while it keeps the decision alone (one claim where it held two: held-out speech clip 208's
    # 6,262 bins became 989 at -1.1 dB, the zoo's French clip's 1,004 became 275 at 0 dB, in 64
    # queries each), its loudest member kept so it stays at the clip's level,
    # and the result re-queried; ``both`` itself where nothing goes or the re-query fails. None
    # where that set holds most of the spectrum (flagged too: held-out speech clip 232's 12,219-bin
    # sufficient-and-necessary set, 51% of the features, shrinks to 2,576 bins at 0 dB; unshrunk it
    # would be no better an answer than the quiet one). Returns the set and the queries spent.
    level = "that is silent" if math.isinf(quiet.level_db) else f"{-quiet.level_db:.0f} dB below it"
    chosen = f"chosen over a {quiet.size}-feature sufficient set {level} (Explanation.quiet_sufficient)"
    ids = both.mask.nonzero().squeeze(1).to(ranking.device)
    members = ids[ranking_positions(ranking)[ids].argsort()]  # most responsible first
    spent = 0
    if budget > 0 and members.numel() > 1:
        mask, report = shrink_members(queries, members, target, budget, seed, members.numel(), CLIP_LEVEL_START)
        spent = report.queries
        if report.size < members.numel():
            kept = queries.probes(queries.set_scores([mask]), target)[0]
            spent += 1
            if kept.passes:
                found = (f"shrunk from the sufficient-and-necessary set ({members.numel()} features, at the clip's "
                         f"level) while it kept the decision alone, its loudest member kept; {chosen}")
                shrunk = build("sufficient", report.size, mask.bool(), kept, report, found)
                return (None if shrunk.flags else shrunk), spent
    if both.flags:
        return None, spent
    note = "; ".join(n for n in (both.certificate.note, f"the sufficient-and-necessary set, at the clip's level, {chosen}") if n)
    certificate = dataclasses.replace(both.certificate, removed=None, note=note)
    return CausalSet("sufficient", both.mask, both.n_bins, certificate, both.energy_share, both.level_db), spent
