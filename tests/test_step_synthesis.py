"""Refinement-step mutants built by linearity equal the mutants synthesised from their keep-masks."""

import itertools

import pytest
import torch

from captum_freqrex import FeatureSpace, StftDomain, linear_bands
from captum_freqrex._core import domains as domains_module
from captum_freqrex._core import feature_space as feature_space_module
from captum_freqrex._core.querier import RowBuffer
from captum_freqrex._core.responsibility import StepQuery
from captum_freqrex._core.step_synthesis import StepSynthesizer, addition_plan
from captum_freqrex._utils.validation import format_baselines, format_waveforms


def _space(x, baselines=None, **kwargs):
    waves, _ = format_waveforms(x)
    return FeatureSpace(waves, format_baselines(baselines, waves), **kwargs)


def _four_way_step(context, piece):
    """A step as the refinement builds it: the rest of the set, then the four sub-pieces."""
    lo, hi = piece
    bounds = [lo + (hi - lo) * i // 4 for i in range(5)]
    subs = [[(bounds[i], bounds[i + 1])] for i in range(4)]
    parts = ([context] if context else []) + subs
    first = 1 if context else 0
    subsets = [c for r in range(4) for c in itertools.combinations(range(4), r)]
    combinations = torch.zeros(len(subsets), len(parts))
    combinations[:, 0] = 1.0 if context else 0.0
    for row, subset in enumerate(subsets):
        for i in subset:
            combinations[row, first + i] = 1.0
    return StepQuery(parts, combinations)


def _reference(space, example, query, removing):
    keep = query.keep_masks(space.n_features, space.device)
    return space.mutants(example, 1.0 - keep if removing else keep)


def _write(space, example, queries, removing, inputs):
    start = tuple(w[example] for w in inputs) if removing else space.baseline_waveforms(example)
    synthesizer = StepSynthesizer(space, example, start, -1.0 if removing else 1.0)
    total = sum(q.combinations.shape[0] for q in queries)
    rows = [torch.full((total,) + tuple(s.shape), float("nan")) for s in start]
    synthesizer.write(queries, rows)
    return rows


CASES = {
    "rfft bins, zero baseline": (lambda: torch.randn(2, 96), None, {}),
    "rfft bins, waveform baseline": (lambda: torch.randn(2, 96), torch.randn(96), {}),
    "two channels shared": (lambda: torch.randn(2, 2, 96), 0.1, {}),
    "two channels per channel": (lambda: torch.randn(2, 2, 96), None, {"per_channel": True}),
    "bands": (lambda: torch.randn(2, 96), None, {"feature_mask": linear_bands(96, 12)}),
    "stft cells": (lambda: torch.randn(2, 256), None, {"domain": StftDomain(n_fft=32, hop_length=16)}),
    # Interleaved ids: features are not runs of bins, so parts go through keep-masks.
    "unsorted ids": (lambda: torch.randn(2, 96), None, {"feature_mask": torch.arange(49) % 7}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("removing", [False, True], ids=["sufficient", "necessary"])
@pytest.mark.parametrize("few_bins", [False, True], ids=["fft", "few-bin products"])
def test_step_mutants_match_mutants_of_their_keep_masks(monkeypatch, case, removing, few_bins):
    torch.manual_seed(0)
    make, baseline, kwargs = CASES[case]
    x = make()
    reference = _space(x, baseline, **kwargs)
    if few_bins:
        # As on long clips: parts of at most 8 bins (here the rest and the second cut's pieces)
        # are matrix products, the first cut's quarters inverse FFTs.
        monkeypatch.setattr(domains_module, "few_bin_limit", lambda length, device: 8)
    space = _space(x, baseline, **kwargs)
    n = space.n_features
    queries = [
        _four_way_step([], (0, n)),
        _four_way_step([(0, 1), (n // 2, n // 2 + 2)], (2, n // 2)),
    ]
    got = _write(space, 1, queries, removing, format_waveforms(x)[0])
    expected = [torch.cat(pieces) for pieces in zip(*(_reference(reference, 1, q, removing) for q in queries))]
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


def test_steps_split_over_several_inverse_transforms_give_the_same_mutants(monkeypatch):
    torch.manual_seed(1)
    x = torch.randn(1, 480)
    space = _space(x, torch.randn(480))
    queries = [_four_way_step([(0, 10)], (10 + 20 * i, 30 + 20 * i)) for i in range(4)]
    whole = _write(space, 0, queries, False, [x])[0]
    # Room for one waveform per transform call: every part is synthesised on its own.
    monkeypatch.setattr(feature_space_module, "CPU_TRANSFORM_BYTES", 480 * 4)
    assert space.rows_per_transform() == 1
    split = _write(space, 0, queries, False, [x])[0]
    torch.testing.assert_close(split, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "rows",
    [
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]],  # a chain
        [[1, 1, 0], [0, 1, 1]],  # no row is one part away from another: built from the start
        [[1, 0, 1], [0, 0, 0], [1, 0, 0], [1, 1, 1]],  # out of order
    ],
)
def test_addition_plan_builds_every_row_from_earlier_rows(rows):
    combinations = torch.tensor(rows, dtype=torch.float32)
    parts = torch.randn(combinations.shape[1], 5)
    start = torch.randn(5)
    built = {}
    for row, source, part in addition_plan(combinations):
        if part is None:
            built[row] = start.clone()
            continue
        base = start if source is None else built[source]
        assert source is None or source == row or source in built, "a row is used before it is built"
        built[row] = base + parts[part]
    for row in range(len(rows)):
        torch.testing.assert_close(built[row], start + combinations[row] @ parts)


@pytest.mark.parametrize("max_rows", [4, 15, 16, 40])
def test_batches_hold_at_most_max_rows_and_give_the_mutants_in_order(max_rows):
    torch.manual_seed(3)
    x = torch.randn(1, 2, 96)
    space = _space(x, torch.randn(96))
    n = space.n_features
    queries = [_four_way_step([], (0, n)), _four_way_step([(0, 2)], (2, 30)), _four_way_step([(0, 2)], (30, 46))]
    expected = _write(space, 0, queries, False, [x])[0]
    synthesizer = StepSynthesizer(space, 0, space.baseline_waveforms(0), 1.0)
    buffer = RowBuffer([x[0]])
    batches = [rows[0].clone() for rows in synthesizer.batches(queries, max_rows, buffer)]
    assert all(b.shape[0] <= max_rows for b in batches)
    assert buffer.capacity <= max_rows
    torch.testing.assert_close(torch.cat(batches), expected, atol=1e-5, rtol=0)
