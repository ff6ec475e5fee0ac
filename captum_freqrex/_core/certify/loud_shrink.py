"""The sufficient shrink that keeps a set at the clip's level.

:func:`shrink_members` deletes features from a passing set (:func:`~captum_freqrex._core.search.shrink.shrink_set`)
while it keeps the decision alone, keeping its loudest member where that is at the clip's level: a
loud set found by the search would otherwise often lose its loud bins to a few quiet ones that the
model takes as readily. The sufficient set's shrink and the set that replaces a quiet sufficient
set (:mod:`~captum_freqrex._core.certify.clip_level`) both use it.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.certify.trust import bin_level
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.records import ShrinkReport
from captum_freqrex._core.search.shrink import Ids, shrink_set
from captum_freqrex._core.spectral.space import ids_to_mask
from captum_freqrex._explanation.informative import MIN_LEVEL_DB, level_floor


def shrink_members(
    queries: ExampleQueries, members: Tensor, target: int, budget: int, seed: int, prefix_size: int, start: str,
) -> Tuple[Tensor, ShrinkReport]:
    r"""Shrink ``members`` by batched deletions while the set kept alone keeps the decision.

    Where the set's loudest member is at the clip's level it is kept (:func:`_shrink_keeping`), so
    the shrunk set stays there; the caller certifies the result.

    Args:
        queries (ExampleQueries): The example and the model caller.
        members (Tensor): The passing set's feature ids, most responsible first (deletions start
                    at the end).
        target (int): The decision to keep.
        budget (int): Most model queries.
        seed (int): Seed of the shrink's final sampled check.
        prefix_size (int): Reported as the :class:`ShrinkReport`'s ``prefix_size``.
        start (str): Reported as its ``start``.

    Returns:
        tuple: The shrunk keep-mask ``(n_features,)`` and the :class:`ShrinkReport`.
    """
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
