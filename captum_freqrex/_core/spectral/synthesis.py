"""Waveforms of a refinement step's mutants, built by linearity of the inverse transform.

Every mutant of a step is the same *start* waveform (the baseline, or the input when the search
removes features) plus or minus the delta waveforms of some of the step's parts (the rest of the
current set and the sub-pieces of the cut piece). So the mutants of a four-way cut (up to 15)
cost five part waveforms (inverse transforms batched over the steps of a model call, or small
matrix products for parts of a few bins of a long clip) and one addition each: each mutant is one
addition away from another mutant with one part fewer. A step asked in two calls (its larger
subsets only where its first five mutants leave it open) transforms its parts once: the parts of
the last call are kept. The mutants go to the model in batches written into reused rows; a step
larger than a batch (long clips) is written a slice at a time.

A feature space built with ``synthesis="reference"`` turns this off: each mutant is then
synthesised from its own keep-mask by :meth:`FeatureSpace.mutants`, the plain formula.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex._core.spectral.space import CPU_TRANSFORM_BYTES, FeatureSpace, Range, ranges_to_mask
from captum_freqrex._core.spectral.rows import RowBuffer

#: How to build one mutant row: (row, earlier row to add to or None for the start, part added).
_Addition = Tuple[int, Optional[int], Optional[int]]


@dataclass
class StepQuery:
    r"""The mutants of one refinement step as 0/1 combinations of disjoint parts.

    Attributes:
        parts (list): Each part a list of disjoint feature ranges: the rest of ``S`` (when
                    non-empty) and then each sub-piece of the cut piece.
        combinations (Tensor): ``(n_mutants, n_parts)`` 0/1: which parts each mutant keeps.
    """

    parts: List[List[Range]]
    combinations: Tensor

    def keep_masks(self, n_features: int, device: torch.device) -> Tensor:
        """Keep-masks ``(n_mutants, n_features)`` of the step's mutants."""
        return self.combinations.to(device) @ ranges_to_mask(self.parts, n_features, device)


def addition_plan(combinations: Tensor) -> List[_Addition]:
    r"""An order of single additions that builds every row of a 0/1 combination matrix.

    Rows are built by increasing number of parts. A row whose parts minus one are an earlier row
    adds that part to it; other rows start from the start waveform and add their parts one by one
    (several entries for the same row, the first with ``None`` as the earlier row).

    Args:
        combinations (Tensor): ``(n_mutants, n_parts)`` 0/1: which parts each mutant holds.

    Returns:
        list: ``(row, source, part)`` in execution order; ``source`` None means the start waveform,
        ``part`` None means no part (the empty mutant, a copy of the start).
    """
    return list(_plan_of_rows(tuple(tuple(bool(v) for v in row) for row in combinations.tolist())))


@functools.lru_cache(maxsize=64)
def _plan_of_rows(rows: Tuple[Tuple[bool, ...], ...]) -> Tuple[_Addition, ...]:
    # Steps repeat a handful of patterns (cuts into n pieces, with or without the rest of the set).
    sets = [frozenset(i for i, kept in enumerate(row) if kept) for row in rows]
    built: Dict[FrozenSet[int], int] = {}
    plan: List[_Addition] = []
    for row in sorted(range(len(sets)), key=lambda r: (len(sets[r]), r)):
        parts = sets[row]
        parent = next(((built[parts - {p}], p) for p in sorted(parts) if parts - {p} in built), None)
        if parent is not None:
            plan.append((row, parent[0], parent[1]))
        elif not parts:
            plan.append((row, None, None))
        else:
            ordered = sorted(parts)
            plan.append((row, None, ordered[0]))
            plan.extend((row, row, p) for p in ordered[1:])
        built.setdefault(parts, row)
    return tuple(plan)


def _consecutive_groups(
    queries: Sequence[StepQuery], size: Callable[[StepQuery], int], limit: int
) -> List[List[StepQuery]]:
    """Consecutive groups of steps whose sizes add up to at most ``limit`` (or one step if larger)."""
    groups: List[List[StepQuery]] = []
    total = 0
    for query in queries:
        n = size(query)
        if groups and total + n <= limit:
            groups[-1].append(query)
            total += n
        else:
            groups.append([query])
            total = n
    return groups


def _n_mutants(query: StepQuery) -> int:
    return query.combinations.shape[0]


def _n_parts(query: StepQuery) -> int:
    return len(query.parts)


class StepSynthesizer:
    r"""Writes the mutants of refinement steps of one example into model-input rows.

    Args:
        space (FeatureSpace): The feature space of the batch.
        example (int): Index of the explained example.
        start (tuple of Tensor): Per input, the waveform every mutant starts from,
                    ``(*example_shape)``.
        sign (float): ``+1`` adds the parts' waveforms to the start (keeping them), ``-1``
                    subtracts them (removing them from the input).
    """

    def __init__(self, space: FeatureSpace, example: int, start: Sequence[Tensor], sign: float) -> None:
        self.space = space
        self.example = example
        self.start = tuple(start)
        self.sign = sign
        self.zero_start = all(bool((s == 0).all()) for s in self.start)
        # The reference synthesis builds every mutant from its keep-mask; start is then unused.
        self.by_keep_masks = space.synthesis == "reference"
        # The part waveforms of the last call, by their ranges (see _part_waves).
        self._parts: Dict[Tuple[Range, ...], Tuple[Tensor, ...]] = {}

    def _write_keep_masks(self, query: StepQuery, lo: int, hi: int, rows: Sequence[Tensor]) -> None:
        # Mutants lo..hi-1 of one step, each synthesised from its own keep-mask.
        parts = StepQuery(query.parts, query.combinations[lo:hi])
        keep = parts.keep_masks(self.space.n_features, self.space.device)
        self.space.mutants(self.example, 1.0 - keep if self.sign < 0 else keep, out=rows)

    def batches(self, queries: Sequence[StepQuery], max_rows: int, buffer: RowBuffer) -> Iterator[List[Tensor]]:
        r"""The mutants of ``queries``, in order, in model batches of at most ``max_rows``.

        Consecutive steps share a batch while they fit; a step with more mutants than ``max_rows``
        has its parts synthesised once and its mutants written ``max_rows`` at a time. Each batch
        is written into the rows of ``buffer``, so it is valid until the next one is drawn.

        Args:
            queries (sequence of StepQuery): Refinement steps of this example.
            max_rows (int): Most mutants per batch.
            buffer (RowBuffer): Where batches are written.

        Yields:
            list of Tensor: Per input, ``(n, *example_shape)`` mutants, ``n <= max_rows``.
        """
        for group in _consecutive_groups(queries, _n_mutants, max_rows):
            total = sum(map(_n_mutants, group))
            if total <= max_rows:
                rows = buffer.take(total)
                self.write(group, rows)
                yield rows
                continue
            (query,) = group
            if self.by_keep_masks:
                for lo in range(0, total, max_rows):
                    hi = min(lo + max_rows, total)
                    rows = buffer.take(hi - lo)
                    self._write_keep_masks(query, lo, hi, rows)
                    yield rows
                continue
            waves = self._part_waves(query.parts)
            for lo in range(0, total, max_rows):
                hi = min(lo + max_rows, total)
                rows = buffer.take(hi - lo)
                plan = addition_plan(query.combinations[lo:hi])
                for wave, out, start in zip(waves, rows, self.start):
                    self._combine(plan, wave, start, out)
                yield rows

    def write(self, queries: Sequence[StepQuery], rows: Sequence[Tensor]) -> None:
        r"""Write the mutants of ``queries``, in order, into ``rows``.

        Args:
            queries (sequence of StepQuery): Refinement steps of this example.
            rows (sequence of Tensor): Per input, ``(n_mutants, *example_shape)`` with
                        ``n_mutants`` the total number of mutants of ``queries``.
        """
        offset = 0
        if self.by_keep_masks:
            for query in queries:
                n_rows = query.combinations.shape[0]
                self._write_keep_masks(query, 0, n_rows, [out[offset : offset + n_rows] for out in rows])
                offset += n_rows
            return
        # Steps whose parts fit one inverse-transform call share it.
        for chunk in _consecutive_groups(queries, _n_parts, self.space.rows_per_transform()):
            waves = self._part_waves([p for q in chunk for p in q.parts])
            first_part = 0
            for query in chunk:
                n_parts, n_rows = len(query.parts), query.combinations.shape[0]
                plan = addition_plan(query.combinations)
                for wave, out, start in zip(waves, rows, self.start):
                    self._combine(
                        plan,
                        wave[first_part : first_part + n_parts],
                        start,
                        out[offset : offset + n_rows],
                    )
                first_part += n_parts
                offset += n_rows

    def _part_waves(self, parts: Sequence[Sequence[Range]]) -> Tuple[List[Tensor], ...]:
        # Per input, one waveform per part. Those of the last call are kept while they fit in
        # CPU_TRANSFORM_BYTES: a refinement step that asks its larger subsets in a second call
        # needs the same parts, and the next step's rest of S is often this step's. Each part is
        # the same inverse transform either way, so the mutants are the same bit for bit.
        keys = [tuple((int(lo), int(hi)) for lo, hi in part) for part in parts]
        missing = [i for i, key in enumerate(keys) if key not in self._parts]
        if missing:
            fresh = self.space.part_waveforms(self.example, [parts[i] for i in missing])
            for j, i in enumerate(missing):
                self._parts[keys[i]] = tuple(waves[j] for waves in fresh)
        kept = {key: self._parts[key] for key in keys}
        size = sum(w.numel() * w.element_size() for waves in kept.values() for w in waves)
        self._parts = kept if size <= CPU_TRANSFORM_BYTES else {}
        return tuple([kept[key][index] for key in keys] for index in range(len(self.start)))

    def _combine(self, plan: List[_Addition], parts: Sequence[Tensor], start: Tensor, out: Tensor) -> None:
        for row, source, part in plan:
            target = out[row]
            if part is None:
                target.copy_(start)
            elif source is not None:
                torch.add(out[source], parts[part], alpha=self.sign, out=target)
            elif self.zero_start:
                torch.mul(parts[part], self.sign, out=target)
            else:
                torch.add(start, parts[part], alpha=self.sign, out=target)
