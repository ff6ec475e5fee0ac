"""Refinement-step mutants built by linearity equal the mutants synthesised from their keep-masks."""

import itertools

import pytest
import torch

from captum_freqrex import FeatureSpace, FreqReX, StftDomain, linear_bands
from captum_freqrex._core.spectral.rows import RowBuffer
from captum_freqrex._core.spectral.synthesis import StepQuery
from captum_freqrex._core.spectral.synthesis import StepSynthesizer, addition_plan
from captum_freqrex._utils.validation import format_baselines, format_waveforms
from known_models import SAMPLE_RATE, bin_of, tone


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


#: Long enough for few-bin products (up to 16 bins at 2**18 samples) and for steps whose parts
#: take more than one inverse-transform call (12 two-channel waveforms of this length fit one).
LONG = 2**18

# Each case: (waveforms of a length, baseline of a length, FeatureSpace options of a length).
CASES = {
    "rfft bins, zero baseline": (lambda n: torch.randn(2, n), lambda n: None, lambda n: {}),
    "rfft bins, waveform baseline": (lambda n: torch.randn(2, n), lambda n: torch.randn(n), lambda n: {}),
    "two channels shared": (lambda n: torch.randn(2, 2, n), lambda n: 0.1, lambda n: {}),
    "two channels per channel": (lambda n: torch.randn(2, 2, n), lambda n: None, lambda n: {"per_channel": True}),
    "bands": (lambda n: torch.randn(2, n), lambda n: None, lambda n: {"feature_mask": linear_bands(n, n // 8)}),
    "stft cells": (lambda n: torch.randn(2, n), lambda n: None, lambda n: {"domain": StftDomain(n_fft=32, hop_length=16)}),
    # Interleaved ids: features are not runs of bins, so parts go through keep-masks.
    "unsorted ids": (
        lambda n: torch.randn(2, n), lambda n: None, lambda n: {"feature_mask": torch.arange(n // 2 + 1) % 7}
    ),
}

#: The cases that exercise few-bin products at length LONG (STFT cells never use them, and
#: unsorted ids hold thousands of bins per feature).
LONG_CASES = sorted(set(CASES) - {"stft cells", "unsorted ids"})


def _spaces(case, length, seed=0):
    """A case's inputs and its feature space with ``synthesis="auto"`` and ``"reference"``."""
    torch.manual_seed(seed)
    make, baseline, options = CASES[case]
    x, base = make(length), baseline(length)
    auto = _space(x, base, **options(length))
    reference = _space(x, base, synthesis="reference", **options(length))
    return x, auto, reference


def _steps(n):
    """Three steps as the refinement builds them: a first cut, a cut inside a set of three
    features, and a cut of a narrow piece (on long clips, parts of a few bins)."""
    steps = [_four_way_step([], (0, n)), _four_way_step([(0, 1), (n // 2, n // 2 + 2)], (2, n // 2))]
    return steps + ([_four_way_step([(0, 2)], (10, 26))] if n > 26 else [])


def _assert_same(got, want, clip):
    # Relative to the clip's peak: float rounding of inverse FFTs and of few-bin products.
    peak = float(clip.abs().max())
    for g, w in zip(got, want):
        torch.testing.assert_close(g / peak, w / peak, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "case, length", [(c, 96 if c != "stft cells" else 256) for c in sorted(CASES)] + [(c, LONG) for c in LONG_CASES]
)
@pytest.mark.parametrize("removing", [False, True], ids=["sufficient", "necessary"])
def test_step_mutants_match_mutants_of_their_keep_masks(case, length, removing):
    x, auto, reference = _spaces(case, length)
    if length == LONG:
        assert auto.few_bin_limits == (16,)  # the rest of the second step and the third step's pieces
    queries = _steps(auto.n_features)
    inputs = format_waveforms(x)[0]
    got = _write(auto, 1, queries, removing, inputs)
    # Each mutant from its own keep-mask, by the plain formula.
    expected = [torch.cat(pieces) for pieces in zip(*(_reference(reference, 1, q, removing) for q in queries))]
    _assert_same(got, expected, x)
    if length != LONG:  # (and at LONG in the batches test below)
        # A reference space's synthesizer does exactly that.
        _assert_same(_write(reference, 1, queries, removing, inputs), expected, x)


def test_steps_split_over_several_inverse_transforms_give_the_reference_mutants():
    torch.manual_seed(1)
    x = torch.randn(1, 2, LONG)
    base = torch.randn(LONG)
    auto, reference = _space(x, base), _space(x, base, synthesis="reference")
    queries = [_four_way_step([(0, 10)], (10 + 20 * i, 30 + 20 * i)) for i in range(4)]
    # 20 parts, 12 waveforms per inverse-transform call: the steps' parts take two calls.
    assert auto.rows_per_transform() == 12
    got = _write(auto, 0, queries, False, [x])
    want = _write(reference, 0, queries, False, [x])
    _assert_same(got, want, x)


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


@pytest.mark.parametrize(
    "length, max_rows", [(96, m) for m in (1, 2, 7, 15, 16, 40)] + [(LONG, m) for m in (1, 7, 40)]
)
def test_batches_hold_at_most_max_rows_and_give_the_mutants_in_order(length, max_rows):
    # Steps of 15 mutants: batches of 1, 2 and 7 rows split each, 15 and 16 hold one, 40 hold
    # several (and at LONG more waveforms than one inverse-transform call takes).
    torch.manual_seed(3)
    x = torch.randn(1, 2, length)
    base = torch.randn(length)
    space, reference = _space(x, base), _space(x, base, synthesis="reference")
    n = space.n_features
    queries = [_four_way_step([], (0, n)), _four_way_step([(0, 2)], (2, 30)), _four_way_step([(0, 2)], (30, 46))]
    expected = _write(reference, 0, queries, False, [x])[0]
    for synthesizer_space in (space, reference):
        synthesizer = StepSynthesizer(synthesizer_space, 0, synthesizer_space.baseline_waveforms(0), 1.0)
        buffer = RowBuffer([x[0]])
        batches = [rows[0].clone() for rows in synthesizer.batches(queries, max_rows, buffer)]
        assert all(b.shape[0] <= max_rows for b in batches)
        assert buffer.capacity <= max_rows
        _assert_same([torch.cat(batches)], [expected], x)


def test_explanations_with_auto_and_reference_synthesis_agree(detector):
    # A tone on one bin of a clip long enough for few-bin products; the detector reads that bin
    # only, so it is the one cause, whichever synthesis builds the mutants.
    seconds = LONG / SAMPLE_RATE
    decisive = bin_of(440, LONG)
    noise = 0.05 * torch.randn(LONG, generator=torch.Generator().manual_seed(0))
    clip = (tone(decisive * SAMPLE_RATE / LONG, seconds) + 0.5 * tone(1000, seconds) + noise).unsqueeze(0)
    options = dict(seed=0, max_queries=200)
    auto = FreqReX(detector).explain(clip, **options)[0]
    reference = FreqReX(detector, synthesis="reference").explain(clip, **options)[0]
    assert reference.settings["synthesis"] == "reference" and auto.settings["synthesis"] == "auto"
    torch.testing.assert_close(auto.responsibility, reference.responsibility, rtol=0, atol=1e-6)
    assert auto.ranking[0] == reference.ranking[0] == decisive
    assert auto.certified and reference.certified
    for name in ("sufficient", "sufficient_necessary", "complete"):
        assert torch.equal(getattr(auto, name).mask, getattr(reference, name).mask)
    assert int(auto.sufficient.mask.sum()) == 1 and bool(auto.sufficient.mask[decisive])
    # The same set rebuilt as a waveform, by either synthesis.
    torch.testing.assert_close(auto.waveform(), reference.waveform(), rtol=0, atol=1e-5)


def test_a_second_call_on_the_same_parts_reuses_their_waveforms(monkeypatch):
    # A refinement step that asks its larger subsets in a second call, and the next step whose rest
    # of S is this step's, reuse the part waveforms: only new parts are transformed, and the
    # mutants are bit for bit those of a synthesizer that transforms every part afresh.
    x = torch.randn(1, 4096)
    space, plain = _space(x), _space(x)  # the second one uncounted, for the fresh synthesizers
    start = space.baseline_waveforms(0)
    synthesizer = StepSynthesizer(space, 0, start, 1.0)
    transformed = []
    original = space.part_waveforms

    def counted(example, parts):
        transformed.append(len(parts))
        return original(example, parts)

    monkeypatch.setattr(space, "part_waveforms", counted)
    step = _four_way_step([(0, 100)], (100, 2049))
    first, larger = (StepQuery(step.parts, step.combinations[rows]) for rows in (slice(0, 5), slice(5, None)))
    for query in (first, larger, _four_way_step([(0, 100)], (100, 587))):
        rows = [torch.full((query.combinations.shape[0], 4096), float("nan"))]
        synthesizer.write([query], rows)
        afresh = [torch.full_like(rows[0], float("nan"))]
        StepSynthesizer(plain, 0, start, 1.0).write([query], afresh)
        assert torch.equal(rows[0], afresh[0])
        torch.testing.assert_close(rows[0], _reference(space, 0, query, False)[0])
    assert transformed == [5, 4]  # the second call none; the next step its four new sub-pieces
