"""Certified shrinking of a sufficient set: drop features while the set stays sufficient.

The extraction returns the smallest sufficient *prefix* of the ranking: minimal along the ranking,
not minimal as a set (a prefix may hold features that another, lower-ranked feature makes
redundant, or ignored features that tie with a cause inside an unsplit piece). :func:`shrink_set`
deletes features from a set known to pass, in the manner of delta debugging (ddmin), batched:

1. **Chunks.** Each round cuts the current set, in its given order, into 2, 4 and 8 chunks (finer
   as rounds fail) and queries the set without each chunk, all in one model call. The largest
   chunk whose removal still passes is dropped, or, where several passed and one more query says
   their removal together passes too, the widest of them that do not overlap, at once; when none
   passes, the next round goes finer. Where the next granularity does not fit in what the budget
   leaves, while single features are still unaffordable (a set of thousands of features), one
   last round asks as many chunks as fit.
2. **Single features.** Once the chunks are single features, each feature's removal is queried
   (a batch at a time, the lowest-ranked first); a removal that passes drops that feature, and
   where several of a batch pass, one more query asks their removal together, which drops them
   all where it passes too (where it does not, the first goes and the others are asked again on
   the smaller set). When every feature's removal from the *final* set has been queried and
   fails, the set is **1-minimal**: no single feature can go (a fact about this set, not about
   every sufficient set; the smallest sufficient set may be smaller still).
3. **Check.** When the budget ends first, part of it (kept back from the start) queries the
   removal of a random sample of the final set's unchecked features, so the report says how far
   from 1-minimal the returned set is: how many sampled removals still keep the decision.

Every accepted deletion was itself a model query on the smaller set, and the caller certifies the
final set again like every other set. Queries: at most ``budget``; a set of ``s`` features needs
at least ``s`` queries to be proven 1-minimal, so the proof is reached for small sets only.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.records import ShrinkReport

#: A set of feature ids as the shrink hands it to its test: a list, or a 1-D tensor (a chunk's
#: removal from a large set, which the test turns into a keep-mask without a list in between).
Ids = Union[List[int], Tensor]

# Positions ``[start, stop)`` of a run of members.
Range = Tuple[int, int]

#: Chunk counts tried in one round: 2 + 4 + 8 = 14 candidate deletions per model call.
GRANULARITIES = 3


def _without(members: List[int], gone: Sequence[int]) -> List[int]:
    # Members are distinct ids; what goes is mostly a run of them (a chunk, one feature): two slices.
    start = _position(members, gone[0]) if gone else -1
    if start >= 0 and members[start : start + len(gone)] == list(gone):
        return members[:start] + members[start + len(gone) :]
    drop = set(gone)
    return [f for f in members if f not in drop]


def _position(members: List[int], feature: int) -> int:
    try:
        return members.index(feature)
    except ValueError:
        return -1


def _chunks(size: int, parts: int) -> List[Range]:
    # Positions ``[a, b)`` of ``parts`` near-equal runs of a set of ``size`` members, in order.
    bounds = torch.linspace(0, size, parts + 1).round().long().tolist()
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _cut(members: Tensor, chunk: Range) -> Tensor:
    # The members without the run at positions ``chunk``.
    a, b = chunk
    return torch.cat((members[:a], members[b:]))


def _cut_all(members: Tensor, chunks: Sequence[Range]) -> Tensor:
    # The members without the disjoint runs at positions ``chunks``.
    keep = torch.ones(members.numel(), dtype=torch.bool)
    for a, b in chunks:
        keep[a:b] = False
    return members[keep]


def _disjoint(chunks: Sequence[Range]) -> List[Range]:
    # The widest chunk, then every other one that overlaps none taken so far, widest first.
    taken: List[Range] = []
    for a, b in sorted(chunks, key=lambda chunk: (chunk[0] - chunk[1], chunk[0])):
        if all(b <= c or a >= d for c, d in taken):
            taken.append((a, b))
    return taken


def check_reserve(check: int, budget: int, max_cost: int = 1) -> int:
    r"""Queries :func:`shrink_set` keeps back from ``budget`` for its final check of ``check``
    sampled features at ``max_cost`` queries each: at most a quarter of the budget."""
    return min(check, budget // max_cost // 4) * max_cost


def shrink_set(
    test: Callable[[Sequence[Ids]], List[bool]],
    members: Sequence[int],
    budget: int,
    generator: torch.Generator,
    *,
    batch: int = 16,
    check: int = 8,
    prefix_size: Optional[int] = None,
    start: str = "prefix",
    spent: Optional[Callable[[], int]] = None,
    max_cost: int = 1,
) -> Tuple[List[int], ShrinkReport]:
    r"""Shrink a passing set by batched deletions; see the module docstring.

    Args:
        test (Callable): ``test(sets) -> passes``: one model call (or a few) on the given sets of
                    feature ids (each a list, or a 1-D tensor while chunks of a large set are
                    removed), each kept alone; a list of bool.
        members (sequence of int): The passing set, most important first (deletions start at the
                    end).
        budget (int): Most queries to spend.
        generator (torch.Generator): Draws the sample of the final check.
        batch (int, optional): Most sets per call. Default: 16
        check (int, optional): Queries kept back for the final check. Default: 8
        prefix_size (int, optional): Reported as ``prefix_size``. Default: ``len(members)``
        start (str, optional): Reported as ``start``. Default: ``"prefix"``
        spent (Callable, optional): The queries ``test`` has made so far, read around each call, for
                    a test whose cost varies from set to set (one that checks a second claim only
                    where the first held). Default: None (one query per set)
        max_cost (int, optional): Most queries ``test`` makes per set; the batches and the kept-back
                    check are sized so that ``budget`` holds even at this cost. Default: 1

    Returns:
        tuple: The shrunk set (ids, in the given order) and its :class:`ShrinkReport`.
    """
    reserve = check_reserve(check, budget, max_cost)
    shrinker = _Shrinker(test, list(members), budget, batch, reserve, spent, max_cost)
    first_size = len(shrinker.current)
    shrinker.drop_chunks()
    shrinker.drop_singles()
    removable = shrinker.final_check(generator)
    current, verified = shrinker.current, shrinker.verified
    checked = len(verified) + removable
    exhaustive = len(current) <= 1 or checked == len(current)
    report = ShrinkReport(
        prefix_size if prefix_size is not None else first_size, first_size, start, len(current), shrinker.queries,
        checked if len(current) > 1 else len(current), removable, exhaustive,
    )
    return current, report


class _Shrinker:
    # The state of one shrink: the current passing set, the queries spent, and the features whose
    # removal from the *current* set was queried and failed.

    def __init__(
        self, test: Callable[[Sequence[Ids]], List[bool]], members: List[int], budget: int, batch: int,
        reserve: int, spent: Optional[Callable[[], int]], max_cost: int,
    ) -> None:
        self.test, self.current, self.budget, self.batch, self.reserve = test, members, budget, batch, reserve
        self.spent, self.max_cost = spent, max_cost
        self.queries = 0
        self.verified: set = set()

    def spend(self, sets: Sequence[Ids]) -> List[bool]:
        if not sets:
            return []
        before = self.spent() if self.spent is not None else 0
        passed = list(self.test(sets))
        self.queries += self.spent() - before if self.spent is not None else len(sets)
        return passed

    def affordable(self, reserve: int) -> int:
        # Sets that the budget pays for at the most a set may cost, ``reserve`` queries kept back.
        return (self.budget - reserve - self.queries) // self.max_cost

    def room(self) -> int:
        return min(self.batch, self.affordable(self.reserve))

    def drop_chunks(self) -> None:
        # Phase 1: chunks of 2 or more features, three granularities per call, until the set is
        # small enough for single features to be affordable (two queries per feature). The set is
        # a tensor here: each candidate is two slices of it, handed to ``test`` as one 1-D tensor
        # (a list of 10^5 ids would cost milliseconds to turn into a keep-mask, per candidate).
        current = torch.tensor(self.current, dtype=torch.long)
        parts = 2
        while (
            current.numel() > 1 and parts < current.numel()
            and 2 * current.numel() > self.affordable(self.reserve)
        ):
            candidates: List[Range] = []
            level = parts
            while (
                level < current.numel() and len(candidates) + level <= self.room()
                and level <= parts * 2 ** (GRANULARITIES - 1)
            ):
                candidates += list(reversed(_chunks(current.numel(), level)))  # the lowest-ranked chunk first
                level *= 2
            last_try = not candidates
            if last_try:
                # The next granularity does not fit in what the budget leaves: one round of as many
                # chunks as do. A set this large cannot afford its single features, each of which
                # would drop one feature per query at best.
                level = self.room()
                if level < 2 or level >= current.numel():
                    break
                candidates = list(reversed(_chunks(current.numel(), level)))
            passed = self.spend([_cut(current, chunk) for chunk in candidates])
            dropped = [chunk for chunk, ok in zip(candidates, passed) if ok]
            if dropped:
                current, gone = self.widest_removal(current, dropped)
                parts = max(2, round(current.numel() / max(gone, 1)) // 2)
            elif last_try:
                break
            else:
                parts = level
        self.current = current.tolist()

    def widest_removal(self, current: Tensor, dropped: List[Range]) -> Tuple[Tensor, int]:
        # The members left and how many went: without the widest chunk whose removal passed, or,
        # where one more query says it still passes, without every one that overlaps no wider one.
        union = _disjoint(dropped)
        if len(union) > 1 and self.room() > 0:
            rest = _cut_all(current, union)
            if self.spend([rest])[0]:
                return rest, current.numel() - rest.numel()
        a, b = union[0]
        return _cut(current, union[0]), b - a

    def drop_singles(self) -> None:
        # Phase 2: sweeps over single features, the lowest-ranked first (features whose removal
        # passed but was not applied yet go first). A sweep without a deletion proves 1-minimality.
        hints: List[int] = []
        while len(self.current) > 1 and self.room() > 0:
            swept: set = set(self.verified)  # removals from the current set already known to fail
            deleted = False
            while self.room() > 0:
                present = set(self.current)
                todo = [f for f in hints + list(reversed(self.current)) if f not in swept and f in present]
                todo = list(dict.fromkeys(todo))[: self.room()]
                if not todo:
                    break
                passed = self.spend([_without(self.current, [f]) for f in todo])
                swept.update(f for f, ok in zip(todo, passed) if not ok)
                self.verified.update(f for f, ok in zip(todo, passed) if not ok)
                gone = [f for f, ok in zip(todo, passed) if ok]
                if gone:
                    # Each removal passed alone; all of them at once is one more query, and where
                    # it passes too the batch drops them all instead of one.
                    rest = _without(self.current, gone)
                    together = len(gone) == 1 or (self.room() > 0 and self.spend([rest])[0])
                    self.current = rest if together else _without(self.current, gone[:1])
                    hints, self.verified, deleted = ([] if together else gone[1:]), set(), True
            if not deleted and not [f for f in self.current if f not in swept]:
                break  # a full sweep without a deletion: every removal fails on the final set

    def final_check(self, generator: torch.Generator) -> int:
        # A random sample of the features not yet checked on the final set; returns how many of
        # them could still be removed.
        unchecked = [f for f in self.current if f not in self.verified] if len(self.current) > 1 else []
        n_check = min(self.batch, self.affordable(0), len(unchecked))
        if n_check <= 0:
            return 0
        order = torch.randperm(len(unchecked), generator=generator)[:n_check].tolist()
        sample = [unchecked[i] for i in order]
        passed = self.spend([_without(self.current, [f]) for f in sample])
        self.verified.update(f for f, ok in zip(sample, passed) if not ok)
        return sum(passed)
